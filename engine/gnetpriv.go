package engine

import (
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/netpoll"
)

// This file is the only place that reaches into gnet's private state. gnet
// v2.9.7 has no public way to stop reading a connection, to watch a
// listener, or to learn a loop's epoll instance, so the engine reads two
// fields of gnet's *eventloop by reflection:
//
//	poller    *netpoll.Poller  (the loop's epoll; its methods are public)
//	listeners map[int]*listener (fds of the loop's listening sockets, SO_REUSEPORT mode)
//
// Everything is checked at start-up (field names and types, the gnet
// version, the build tags, and a live pause self-test in probe.go); if any
// check fails the engine refuses to start rather than corrupt a loop.

// gnetVersion is the gnet release whose internals this file was written against.
const gnetVersion = "v2.9.7"

// gnetLoopPriv is what the engine needs from one gnet loop.
type gnetLoopPriv struct {
	poller      *netpoll.Poller
	listenerFDs []int
}

var pollerType = reflect.TypeOf((*netpoll.Poller)(nil))

// inspectLoop extracts the poller and listener fds from a gnet event loop.
func inspectLoop(el gnet.EventLoop) (gnetLoopPriv, error) {
	var out gnetLoopPriv
	if gnetPollOpt {
		return out, errors.New("gnet built with the poll_opt tag: epoll data holds pointers there, so the engine's read pause would corrupt it; build without -tags poll_opt")
	}
	v := reflect.ValueOf(el)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return out, fmt.Errorf("gnet event loop is %T, want a pointer to a struct", el)
	}
	s := v.Elem()
	if s.Type().Name() != "eventloop" {
		return out, fmt.Errorf("gnet event loop type is %s, want eventloop", s.Type())
	}
	p := s.FieldByName("poller")
	if !p.IsValid() || p.Type() != pollerType {
		return out, fmt.Errorf("gnet eventloop.poller is missing or not %s", pollerType)
	}
	out.poller = (*netpoll.Poller)(p.UnsafePointer())
	if out.poller == nil {
		return out, errors.New("gnet eventloop.poller is nil")
	}
	ls := s.FieldByName("listeners")
	if !ls.IsValid() || ls.Kind() != reflect.Map || ls.Type().Key().Kind() != reflect.Int {
		return out, errors.New("gnet eventloop.listeners is missing or not map[int]*listener")
	}
	for _, k := range ls.MapKeys() {
		out.listenerFDs = append(out.listenerFDs, int(k.Int()))
	}
	return out, nil
}

// checkGnetVersion refuses any gnet other than the one this file knows.
// A binary without module information (rare) is let through: the shape
// checks and the live self-test still guard it.
func checkGnetVersion() error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	for _, d := range bi.Deps {
		if d.Path != "github.com/panjf2000/gnet/v2" {
			continue
		}
		if d.Replace != nil {
			d = d.Replace
		}
		if d.Version != gnetVersion {
			return fmt.Errorf("gnet %s linked, but the engine's workarounds are verified only against %s", d.Version, gnetVersion)
		}
		return nil
	}
	return nil
}
