// The event API both socket.io peers share with tidings' Socket.IO bridge: `subscribe(topic)`
// joins the room, `publish(topic, data)` broadcasts `message` {topic, offset, data} to it;
// both ack. Offsets are counted by this process.
module.exports = function attach(io) {
  const offsets = new Map();
  io.on("connection", (socket) => {
    socket.on("subscribe", (topic, ack) => {
      socket.join(topic);
      if (typeof ack === "function") ack({ ok: true, topic });
    });
    socket.on("publish", (topic, data, ack) => {
      const offset = (offsets.get(topic) || 0) + 1;
      offsets.set(topic, offset);
      io.to(topic).emit("message", { topic, offset, data });
      if (typeof ack === "function") ack({ ok: true, topic, offset });
    });
  });
};
