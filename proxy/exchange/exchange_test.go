package exchange

import "testing"

// Decide's rules, one row each; TestRetryPolicyTable in package proxy
// runs them through each protocol pair's exchange.
func TestDecide(t *testing.T) {
	base := Facts{RetriesLeft: 1}
	cases := []struct {
		name string
		f    func(*Facts)
		want Action
	}{
		{"nothing known failed", func(*Facts) {}, NoRetry},
		{"connect failed", func(f *Facts) { f.Connecting = true }, Elsewhere},
		{"connect failed, no retry left", func(f *Facts) { f.Connecting, f.RetriesLeft = true, 0 }, NoRetry},
		{"connect failed, body taken and not held", func(f *Facts) { f.Connecting, f.BodyTaken = true, 1 }, NoRetry},
		{"connect failed, body held", func(f *Facts) { f.Connecting, f.BodyTaken, f.BodyHeld = true, 1, true }, Elsewhere},
		{"connect failed after a 100 Continue", func(f *Facts) { f.Connecting, f.Interim = true, true }, NoRetry},
		{"connection never opened, refused", func(f *Facts) { f.Connecting, f.Refused = true, true }, Elsewhere},
		{"refused, any method", func(f *Facts) { f.Refused = true }, Same},
		{"refused after a 100 Continue", func(f *Facts) { f.Refused, f.Interim = true, true }, Same},
		{"refused, body not held", func(f *Facts) { f.Refused, f.BodyTaken = true, 10 }, NoRetry},
		{"refused after the response head", func(f *Facts) { f.Refused, f.RespStarted = true, true }, NoRetry},
		{"stale, idempotent", func(f *Facts) { f.Stale, f.Idempotent = true, true }, Fresh},
		{"stale, not idempotent", func(f *Facts) { f.Stale = true }, NoRetry},
		{"stale, idempotent, after a 100 Continue", func(f *Facts) { f.Stale, f.Idempotent, f.Interim = true, true, true }, NoRetry},
		{"stale, idempotent, body held", func(f *Facts) { f.Stale, f.Idempotent, f.BodyTaken, f.BodyHeld = true, true, 5, true }, Fresh},
	}
	for _, c := range cases {
		f := base
		c.f(&f)
		if got := Decide(f); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestBlames(t *testing.T) {
	for _, c := range []struct {
		up, conn, stale, refused, want bool
	}{
		{up: false, want: false},                          // the client's failure
		{up: true, want: true},                            // the upstream reset, timed out, ...
		{up: true, stale: true, want: false},              // an idle pooled connection it closed
		{up: true, refused: true, want: false},            // it said it did nothing
		{up: true, conn: true, refused: true, want: true}, // its connection never opened
	} {
		if got := Blames(c.up, c.conn, c.stale, c.refused); got != c.want {
			t.Errorf("Blames(%v, %v, %v, %v) = %v", c.up, c.conn, c.stale, c.refused, got)
		}
	}
}

// The replay buffer keeps what a retry needs and gives up for good past
// its bound.
func TestReplayBound(t *testing.T) {
	var r Replay
	r.Arm(true)
	r.Keep([]byte("abc"), 5, true)
	r.Keep([]byte("de"), 5, true)
	if string(r.Bytes()) != "abcde" || !r.OK() || len(r.Rest()) != 0 {
		t.Fatalf("buf %q ok %v rest %q", r.Bytes(), r.OK(), r.Rest())
	}
	r.NewAttempt()
	if string(r.Rest()) != "abcde" {
		t.Fatalf("rest %q after a new attempt", r.Rest())
	}
	r.Sent(2)
	if string(r.Rest()) != "cde" {
		t.Fatalf("rest %q after 2 resent", r.Rest())
	}
	r.Keep([]byte("f"), 5, true)
	if r.OK() || r.Len() != 0 {
		t.Fatalf("past the bound: buf %q ok %v", r.Bytes(), r.OK())
	}
	r.Keep([]byte("g"), 5, true)
	if r.OK() || r.Len() != 0 {
		t.Fatal("a dropped replay came back")
	}
	r.Arm(true)
	r.Keep([]byte("x"), 5, false)
	if r.OK() {
		t.Fatal("kept with no retry left")
	}
}
