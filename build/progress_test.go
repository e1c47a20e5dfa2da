package build

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPrinterModes(t *testing.T) {
	var b bytes.Buffer
	p := newPrinter(&b, "plain")
	p.begin("[s 2/3]", "RUN make")
	o := p.output("[s 2/3]")
	o.Write([]byte("line one\nline two\npartial"))
	o.Close()
	p.done("[s 2/3]", "RUN make", 1500*time.Millisecond, true)
	want := "[s 2/3] RUN make\n    line one\n    line two\n    partial\n[s 2/3] DONE 1.50s\n"
	if b.String() != want {
		t.Errorf("plain:\n%q\nwant\n%q", b.String(), want)
	}
	if o.Tail() != "line one\nline two\npartial" {
		t.Errorf("tail %q", o.Tail())
	}

	b.Reset()
	q := newPrinter(&b, "quiet")
	q.cached("[s 1/1]", "COPY . /")
	q.output("[s 1/1]").Write([]byte("hidden\n"))
	if b.Len() != 0 {
		t.Errorf("quiet printed %q", b.String())
	}

	b.Reset()
	tty := newPrinter(&b, "tty")
	tty.begin("[s 1/1]", "RUN x")
	to := tty.output("[s 1/1]")
	for i := 0; i < 10; i++ {
		to.Write([]byte("out\n"))
	}
	tty.done("[s 1/1]", "RUN x", time.Second, true)
	s := b.String()
	if !strings.Contains(s, "\x1b[J") || !strings.HasSuffix(s, "[s 1/1] DONE 1.00s\n") {
		t.Errorf("tty view: %q", s)
	}
}
