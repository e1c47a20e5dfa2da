package store

import (
	"strings"
	"testing"
)

func TestParsePlatform(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"linux/amd64", "linux/amd64", ""},
		{"linux/arm64/v8", "linux/arm64/v8", ""},
		{"linux/arm/v7", "linux/arm/v7", ""},
		{"linux/x86_64", "linux/amd64", ""},
		{"linux/aarch64", "linux/arm64", ""},
		{"windows/amd64", "windows/amd64", ""},
		{"bogus", "", "want os/arch"},
		{"linux/bogus", "", `unknown architecture "bogus"`},
		{"linux", "", "want os/arch"},
		{"plan10/amd64", "", `unknown operating system "plan10"`},
	} {
		p, err := ParsePlatform(c.in)
		switch {
		case c.err == "" && (err != nil || PlatformString(&p) != c.want):
			t.Errorf("%q: got %q, %v; want %q", c.in, PlatformString(&p), err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one with %q", c.in, err, c.err)
		}
	}
	h := HostPlatform()
	if p, err := ParsePlatform(""); err != nil || PlatformString(&p) != PlatformString(&h) {
		t.Errorf(`"" is %v, %v; want the host's`, p, err)
	}
}
