package bench

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fdSlack is the descriptors a run needs beside its connections: stdio,
// the runtime's epoll and pipes, /proc reads, a listener in tests.
const fdSlack = 64

// raiseFDLimit lifts RLIMIT_NOFILE's soft limit to the hard one and
// checks that need descriptors fit, naming the limit to change if not.
func raiseFDLimit(need int) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading RLIMIT_NOFILE: %v", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raising RLIMIT_NOFILE to its hard limit %d: %v", lim.Max, err)
		}
	}
	if uint64(need) > lim.Cur {
		return fmt.Errorf("-c needs about %d file descriptors but the hard limit RLIMIT_NOFILE (ulimit -Hn) is %d: "+
			"raise it (as root: ulimit -Hn %d; systemd: LimitNOFILE=; /etc/security/limits.conf nofile; the kernel's fs.nr_open caps it) or lower -c",
			need, lim.Cur, need)
	}
	return nil
}

// dialer opens the run's connections. For a loopback target it spreads
// them over source addresses 127.0.0.1..127.0.0.n: the kernel's ephemeral
// ports (about 28,000 by default) are per source and destination pair, so
// one source address cannot reach 100,000 connections to one port.
type dialer struct {
	n       int
	timeout time.Duration
	next    uint32
}

func newDialer(o *Options) *dialer {
	d := &dialer{n: 1, timeout: o.Timeout}
	ip := net.ParseIP(o.URL.Hostname())
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		d.n = 0 // not loopback: let the kernel choose
		return d
	}
	d.n = o.SourceIPs
	if d.n == 0 {
		d.n = (o.Conns + 15999) / 16000
	}
	return d
}

// dial connects to addr from the next source address.
func (d *dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	if d.n > 1 {
		i := (atomic.AddUint32(&d.next, 1) - 1) % uint32(d.n)
		nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		// Choose the port at connect, not bind, so the port is unique
		// per (source, destination), not per source alone.
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return nd.DialContext(ctx, "tcp", addr)
}
