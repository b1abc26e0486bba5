package proxy

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Route
	}{
		{"/=http://10.0.0.1:8080", Route{"", "", "/", []string{"10.0.0.1:8080"}, "", 0, 0, nil}},
		{"=10.0.0.1:8080", Route{"", "", "/", []string{"10.0.0.1:8080"}, "", 0, 0, nil}},
		{"Example.COM./api=http://a:1,http://b:2/", Route{"", "example.com", "/api", []string{"a:1", "b:2"}, "", 0, 0, nil}},
		{"example.com=http://a", Route{"", "example.com", "/", []string{"a:80"}, "", 0, 0, nil}},
		{"/static/=http://[::1]:81", Route{"", "", "/static/", []string{"[::1]:81"}, "", 0, 0, nil}},
		{"::1/x=a:1", Route{"", "[::1]", "/x", []string{"a:1"}, "", 0, 0, nil}},
		{"api:example.com/api=a:1", Route{"api", "example.com", "/api", []string{"a:1"}, "", 0, 0, nil}},
		{"static-v2:/s=a:1", Route{"static-v2", "", "/s", []string{"a:1"}, "", 0, 0, nil}},
		{"v6:[::1]/x=a:1", Route{"v6", "[::1]", "/x", []string{"a:1"}, "", 0, 0, nil}},
		{"fe80::1/x=a:1", Route{"", "[fe80::1]", "/x", []string{"a:1"}, "", 0, 0, nil}},
		{"/=https://a,https://b:8443/,http://a", Route{"", "", "/", []string{"https://a:443", "https://b:8443", "a:80"}, "", 0, 0, nil}},
		{"/=h2://a,h2c://a:81", Route{"", "", "/", []string{"h2://a:443", "h2c://a:81"}, "", 0, 0, nil}},
		{"/=https://10.0.0.5:8443?sni=api.internal,h2://a/?sni=B.Example,https://10.0.0.5:8443",
			Route{"", "", "/", []string{"https://10.0.0.5:8443?sni=api.internal", "h2://a:443?sni=b.example", "https://10.0.0.5:8443"}, "", 0, 0, nil}},
	} {
		got, err := ParseRoute(tc.in)
		if err != nil {
			t.Errorf("ParseRoute(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseRoute(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{
		"",
		"/api",                         // no =
		"b@d:/x=a:1",                   // bad name
		":/x=a:1",                      // empty name
		"/api=",                        // no upstream
		"/a b=http://x:1",              // space in prefix
		"/a?b=http://x:1",              // query in prefix
		"bad host/=http://x:1",         // space in host
		"/=h3://x:1",                   // no such scheme
		"/=https://x:1/base",           // paths not supported
		"/=https://x:1?sni=10.0.0.1",   // SNI is a name, never an IP
		"/=https://x:1?sni=a..b",       // not a name
		"/=https://x:1?sni=a.b.",       // no trailing dot in SNI
		"/=https://x:1?sni=",           // empty
		"/=https://x:1?foo=1",          // sni is the only option
		"/=https://x:1?sni=a&sni=b",    // once
		"/=http://x:1?sni=a",           // cleartext: no SNI
		"/=h2c://x:1?sni=a",            // cleartext: no SNI
		"/=tcp://x:1",                  // not http
		"/=http://x:1/base",            // paths not supported
		"/=http://u:p@x:1",             // userinfo
		"/=http://x:0",                 // port 0
		"/=http://x:99999",             // port range
		"/=x",                          // no port
		"/=http://x:1,http://x:1",      // listed twice
		"/=http://x:1,,http://y:1",     // empty element
		"example.com:8080/=http://x:1", // port in the route host
	} {
		if r, err := ParseRoute(in); err == nil {
			t.Errorf("ParseRoute(%q) = %+v, want an error", in, r)
		}
	}
}

func TestRouterMatch(t *testing.T) {
	mk := func(s string) *route {
		r, err := ParseRoute(s)
		if err != nil {
			t.Fatal(err)
		}
		return &route{Route: r}
	}
	rs := []*route{mk("/=a:1"), mk("/api=b:1"), mk("/api/v1/=c:1"), mk("h.example/=d:1"), mk("h.example/img=e:1"), mk("[::1]/=f:1")}
	rt, err := newRouter(rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ host, target, want string }{
		{"x", "/", "a:1"},
		{"", "/api?x=1", "b:1"},
		{"x", "/api/v1/", "c:1"},
		{"x", "/api/v1", "b:1"},
		{"x", "/apiary", "b:1"},
		{"H.Example:443", "/img/1.png", "e:1"},
		{"h.example.", "/api", "d:1"},
		{"[::1]:8080", "/api", "f:1"},
		{"[::1", "/", "a:1"}, // malformed: no host match, any-host routes
		{strings.Repeat("h", 300), "/", "a:1"},
	} {
		r := rt.match([]byte(tc.host), []byte(tc.target))
		if r == nil || r.Upstreams[0] != tc.want {
			t.Errorf("match(%q, %q) = %v, want %s", tc.host, tc.target, r, tc.want)
		}
	}
	if _, err := newRouter([]*route{mk("/x=a:1"), mk("/x=b:1")}); err == nil {
		t.Error("duplicate host+prefix accepted")
	}
	only, _ := newRouter([]*route{mk("h.example/=a:1")})
	if r := only.match([]byte("other"), []byte("/")); r != nil {
		t.Errorf("no any-host route: matched %v", r.Route)
	}
}

func TestOriginForm(t *testing.T) {
	for _, tc := range []struct {
		target string
		form   h1.TargetForm
		want   string
	}{
		{"/a?b", h1.OriginForm, "/a?b"},
		{"*", h1.AsteriskForm, "*"},
		{"http://h/a?b", h1.AbsoluteForm, "/a?b"},
		{"http://h:80", h1.AbsoluteForm, "/"},
		{"https://h:80?q", h1.AbsoluteForm, "/?q"},
	} {
		if got := originForm([]byte(tc.target), tc.form, nil); string(got) != tc.want {
			t.Errorf("originForm(%q) = %q, want %q", tc.target, got, tc.want)
		}
	}
}

func TestNewHTTPConfigErrors(t *testing.T) {
	ok := []Route{{PathPrefix: "/", Upstreams: []string{"a:1"}}}
	for name, cfg := range map[string]HTTPConfig{
		"no routes":   {},
		"bad balance": {Routes: ok, Balance: "random"},
		"bad scheme":  {Routes: ok, Scheme: "ftp"},
		"bad health":  {Routes: ok, HealthPath: "nohash"},
		"bad via":     {Routes: ok, Via: "a\r\nb"},
		"bad prefix":  {Routes: []Route{{PathPrefix: "x", Upstreams: []string{"a:1"}}}},
		"no upstream": {Routes: []Route{{PathPrefix: "/"}}},
		"bad addr":    {Routes: []Route{{PathPrefix: "/", Upstreams: []string{"nope"}}}},
		"duplicate":   {Routes: []Route{ok[0], ok[0]}},
	} {
		if _, err := NewHTTP(cfg, nil); err == nil {
			t.Errorf("%s: NewHTTP accepted %+v", name, cfg)
		}
	}
	h, err := NewHTTP(HTTPConfig{Routes: []Route{
		{PathPrefix: "/a", Upstreams: []string{"x:1", "y:1"}},
		{PathPrefix: "/b", Upstreams: []string{"http://y:1"}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(h.Upstreams()); n != 2 {
		t.Errorf("upstreams = %d, want 2 (shared by address)", n)
	}
}
