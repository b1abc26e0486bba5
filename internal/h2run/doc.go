// Package h2run drives a sans-I/O HTTP/2 codec (httpcodec/h2.Conn) on an
// engine connection: bytes read go in with Feed, queued frames go out with
// WriteOut (at once) or Kick (once the loop has handled its current batch
// of events, so many responses leave in one Write), and the codec's one
// deadline is kept on the connection's TimerProto (ArmTimer, OnTimer).
// proxy uses it for HTTP/2 client connections, h2c/h2 upstream
// connections and the h2c health probe.
//
// # Threading model
//
// A Runner is loop-owned, like the engine.Conn it writes to: every method
// runs on that connection's loop, inside its callbacks or a task posted
// to it.
//
// # Limits
//
// It owns no policy: what to do when the codec fails, is drained or goes
// quiet is the caller's. The batching itself is the caller's too: Kick
// calls the function given to Init, once per batch.
package h2run
