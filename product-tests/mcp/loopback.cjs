// Preload (node --require ./loopback.cjs …): force every TCP listen() without a host onto
// 127.0.0.1. server-everything's HTTP transports call app.listen(PORT) with no host, which
// would bind every interface; tests must stay on loopback.
const net = require('net');
const orig = net.Server.prototype.listen;
net.Server.prototype.listen = function (...a) {
  if (typeof a[0] === 'number' || (typeof a[0] === 'string' && /^\d+$/.test(a[0]))) {
    if (typeof a[1] !== 'string') a.splice(1, 0, '127.0.0.1');
  } else if (a[0] && typeof a[0] === 'object' && a[0].path === undefined && !a[0].host) {
    a[0] = { ...a[0], host: '127.0.0.1' };
  }
  return orig.apply(this, a);
};
