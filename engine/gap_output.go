package engine

// gnet gaps: Close() discards pending output, and there is no "drained"
// callback.
//
// gnet's Conn.Close drops whatever is still in its outbound buffer after one
// non-blocking attempt, and the peer sees an ordinary FIN: truncation that
// looks like success. gnet also never says when its buffer has drained.
//
// The engine therefore never hands bytes to gnet's write path. Every byte
// goes through the connection's own output queue (outq.go) and is written
// with write(2)/writev(2) on the connection's fd by the loop (conn.go flush).
// When the socket is full the fd is registered EPOLLOUT|EPOLLONESHOT in the
// loop's watcher epoll (watcher.go); the watcher posts one task to the loop
// and the loop writes again. gnet's outbound buffer stays empty at all times,
// so "flushed" is simply "our queue is empty", known the moment the last
// writev returns, and gnet's Close can never lose a byte. The watcher also
// carries the loop's timerfd, so write readiness and deadlines cost one
// goroutine per loop in total.
