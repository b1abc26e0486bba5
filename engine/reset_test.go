package engine

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// resetNotFIN tells an RST from a FIN once the read side says EOF: after a
// peer's FIN the socket is in CLOSE_WAIT; after an RST whose error was
// taken (here by getsockopt(SO_ERROR), as some other syscall may do in the
// engine), read returns 0 like a FIN, but the socket is in CLOSE.
func TestResetNotFIN(t *testing.T) {
	for _, reset := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peerc := make(chan net.Conn, 1)
		go func() { c, _ := ln.Accept(); peerc <- c }()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		peer := <-peerc
		ln.Close()
		peer.Write([]byte("partial"))
		if reset {
			peer.(*net.TCPConn).SetLinger(0)
		}
		peer.Close()
		raw, _ := c.(*net.TCPConn).SyscallConn()
		var got bool
		var n int
		var rerr error
		raw.Control(func(fd uintptr) {
			// Wait for the FIN or the RST (both raise POLLRDHUP).
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
			if k, err := unix.Poll(pfd, 5000); k != 1 || err != nil {
				t.Errorf("reset=%v: poll %d, %v", reset, k, err)
			}
			unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR) // take the error, if any
			buf := make([]byte, 64)
			n, rerr = unix.Read(int(fd), buf) // the data, if the kernel kept it
			if n > 0 {
				n, rerr = unix.Read(int(fd), buf)
			}
			got = resetNotFIN(int(fd))
		})
		c.Close()
		if n != 0 || rerr != nil {
			t.Fatalf("reset=%v: read %d, %v; want the EOF a consumed error leaves", reset, n, rerr)
		}
		if got != reset {
			t.Fatalf("reset=%v: resetNotFIN = %v", reset, got)
		}
	}
}
