package build

import (
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
)

func TestRunSteps(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	e.importBusybox("busybox")
	dir := writeContext(t, map[string]string{
		"Dockerfile": `FROM busybox
ENV GREETING=hello
ARG WHO=world
RUN echo "$GREETING $WHO" > /greeting && echo out-line
RUN ["/bin/sh", "-c", "mkdir -p /data && echo exec > /data/x"]
RUN rm /bin/vi
WORKDIR /work
RUN pwd > here
USER nobody
RUN id -u > /tmp/uid
`,
	})
	r, out := e.mustBuild(dir, nil)
	img := onlyImage(t, r)
	root := rootfsOf(t, img)
	fs := tree(t, root)
	for _, p := range []string{"greeting", "data/x", "work/here", "tmp/uid"} {
		if _, ok := fs[p]; !ok {
			t.Errorf("%s missing", p)
		}
	}
	if _, ok := fs["bin/vi"]; ok {
		t.Errorf("bin/vi not deleted")
	}
	if !strings.Contains(out, "    out-line") {
		t.Errorf("RUN output not indented under the step:\n%s", out)
	}
	t.Log(out)
}
