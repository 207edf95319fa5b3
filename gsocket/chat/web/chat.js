// gsocket chat in the browser: the line protocol over a WebSocket at /ws,
// one text message per line each way (see README "Browser door").
// Plain JavaScript, no build step, nothing fetched from elsewhere.
"use strict";

(function () {
  const log = document.getElementById("log");
  const membersList = document.getElementById("members");
  const countLabel = document.getElementById("count");
  const roomLabel = document.getElementById("room");
  const nickLabel = document.getElementById("nick");
  const statusLabel = document.getElementById("status");
  const form = document.getElementById("say");
  const input = document.getElementById("line");
  const sendButton = document.getElementById("send");

  const state = { nick: null, room: null, members: [], quietWho: 0 };
  const MAX_LINES = 2000;   // older lines are dropped from the page

  const MESSAGE = /^\[([^\]]+)\] ([^\s:]+): (.*)$/;
  const ACTION = /^\[([^\]]+)\] \* (\S+) (.*)$/;
  const WELCOME = /^\* welcome (\S+), you are in (\S+?):/;
  const RENAMED = /^\* (\S+) is now known as (\S+)$/;
  const JOINED = /^\* (\S+) joined (\S+)$/;
  const LEFT = /^\* (\S+) left (\S+?)(?: \(.*\))?$/;
  const WHO = /^\* (\S+) \((\d+)\): (.*)$/;

  function setStatus(text, kind) {
    statusLabel.textContent = text;
    statusLabel.className = "status " + kind;
  }

  function span(cls, text) {
    const element = document.createElement("span");
    element.className = cls;
    element.textContent = text;
    return element;
  }

  // One line of the log; `raw` is the protocol line (kept in data-line).
  function show(raw, kind, parts) {
    const row = document.createElement("div");
    row.className = "line " + kind;
    row.dataset.line = raw;
    for (const part of parts || [span("text", raw)]) row.appendChild(part);
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.appendChild(row);
    while (log.childElementCount > MAX_LINES) log.removeChild(log.firstElementChild);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function showMessage(raw, kind, room, nick, text, action) {
    const parts = [span("room", "[" + room + "] ")];
    if (action) {
      parts.push(span("nick", "* " + nick), span("text", " " + text));
    } else {
      parts.push(span("nick", nick), span("text", ": " + text));
    }
    show(raw, kind + (action ? " action" : ""), parts);
  }

  function renderMembers() {
    membersList.replaceChildren();
    for (const nick of state.members) {
      const item = document.createElement("li");
      item.textContent = nick;
      if (nick === state.nick) item.className = "me";
      membersList.appendChild(item);
    }
    countLabel.textContent = state.members.length ? "(" + state.members.length + ")" : "";
  }

  function setMembers(nicks) {
    state.members = nicks.slice().sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : 1);
    renderMembers();
  }

  function setRoom(room) {
    state.room = room;
    roomLabel.textContent = room;
    document.title = room + " - gsocket chat";
  }

  function askWho() {
    state.quietWho += 1;
    send("/who");
  }

  // A line from the server: update the room, nick and members, then show it.
  function receive(raw) {
    let match;
    if (raw.startsWith("[pm] ")) {
      show(raw, "pm");
    } else if ((match = ACTION.exec(raw))) {
      showMessage(raw, "said", match[1], match[2], match[3], true);
    } else if ((match = MESSAGE.exec(raw))) {
      showMessage(raw, "said", match[1], match[2], match[3], false);
    } else if (raw.startsWith("! ")) {
      show(raw, "error");
    } else if (raw.startsWith("* [")) {
      show(raw, "history");
    } else if ((match = WHO.exec(raw)) && match[1] === state.room) {
      setMembers(match[3].split(", ").filter(Boolean));
      if (state.quietWho > 0) { state.quietWho -= 1; return; }
      show(raw, "notice");
    } else {
      if ((match = WELCOME.exec(raw))) {
        state.nick = match[1];
        nickLabel.textContent = state.nick;
        setRoom(match[2]);
        askWho();
      } else if ((match = RENAMED.exec(raw))) {
        if (match[1] === state.nick) {
          state.nick = match[2];
          nickLabel.textContent = state.nick;
        }
        setMembers(state.members.map((nick) => nick === match[1] ? match[2] : nick));
      } else if ((match = JOINED.exec(raw))) {
        if (match[1] === state.nick) {
          setRoom(match[2]);
          askWho();
        } else if (match[2] === state.room && !state.members.includes(match[1])) {
          setMembers(state.members.concat([match[1]]));
        }
      } else if ((match = LEFT.exec(raw)) && match[2] === state.room) {
        setMembers(state.members.filter((nick) => nick !== match[1]));
      }
      show(raw, "notice");
    }
  }

  let socket = null;

  function send(line) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(line);
  }

  // What the page shows for a line the user typed (the server does not echo).
  function echo(line) {
    let match;
    if (!line.trim()) return;
    if (line.startsWith("//") || !line.startsWith("/")) {
      const text = line.startsWith("//") ? line.slice(1) : line;
      showMessage("[" + state.room + "] " + state.nick + ": " + text, "said mine",
                  state.room, state.nick, text, false);
    } else if ((match = /^\/me (.+)$/.exec(line))) {
      showMessage("[" + state.room + "] * " + state.nick + " " + match[1], "said mine",
                  state.room, state.nick, match[1], true);
    } else if ((match = /^\/msg (\S+) (.+)$/.exec(line))) {
      show("[pm to " + match[1] + "] " + match[2], "pm mine");
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws");
    socket.onopen = () => {
      setStatus("connected", "open");
      input.disabled = false;
      sendButton.disabled = false;
      input.focus();
    };
    socket.onmessage = (message) => {
      if (typeof message.data === "string") receive(message.data);
    };
    socket.onclose = (closed) => {
      setStatus("disconnected", "closed");
      input.disabled = true;
      sendButton.disabled = true;
      show("* disconnected" + (closed.reason ? ": " + closed.reason : "") +
           " (reload the page to come back)", "notice");
    };
  }

  form.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const line = input.value;
    if (!line) return;
    send(line);
    echo(line);
    input.value = "";
  });

  connect();
})();
