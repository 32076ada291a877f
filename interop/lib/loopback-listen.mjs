// Preloaded (`node --import`) into a server that listens on every interface with no way to say
// otherwise (server-everything's Streamable HTTP mode calls `app.listen(PORT)`): a listen call
// that names a port but no host is bound to 127.0.0.1 instead, so the test never exposes it
// beyond loopback. With PORT=0 the kernel picks the port; once listening, this prints
// `READY url=http://127.0.0.1:PORT/mcp` for interop/run to wait on.

import net from 'node:net';

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  const portOnly = typeof port === 'number' || (typeof port === 'string' && /^\d+$/.test(port));
  if (portOnly && typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  this.once('listening', () => {
    const a = this.address();
    if (a && typeof a === 'object') console.log(`READY url=http://127.0.0.1:${a.port}/mcp`);
  });
  return listen.apply(this, args);
};
