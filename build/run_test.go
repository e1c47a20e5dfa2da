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
RUN id -u > /tmp/uid && grep -E '^(Seccomp|CapEff):' /proc/self/status > /tmp/status
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
	status := readFile(t, root+"/tmp/status")
	if !strings.Contains(status, "Seccomp:\t2") || !strings.Contains(status, "CapEff:\t0000000000000000") {
		t.Errorf("RUN as nobody: want seccomp filter and no effective caps, got %q", status)
	}
	if got := readFile(t, root+"/tmp/uid"); got != "65534\n" {
		t.Errorf("USER nobody ran as %q", got)
	}
	if got := readFile(t, root+"/work/here"); got != "/work\n" {
		t.Errorf("WORKDIR: pwd %q", got)
	}
	if got := readFile(t, root+"/greeting"); got != "hello world\n" {
		t.Errorf("ENV+ARG in RUN: %q", got)
	}
	if !strings.Contains(out, "    out-line") {
		t.Errorf("RUN output not indented under the step:\n%s", out)
	}
	t.Log(out)
}

// RUN heredocs (a script with its own #! line, plain shell text, a
// heredoc fed to a command), --network, tmpfs and context bind mounts.
func TestRunForms(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	e.importBusybox("busybox")
	dir := writeContext(t, map[string]string{
		"Dockerfile": `FROM busybox
RUN <<EOF
#!/bin/sh -e
echo "script $0" > /script.txt
EOF
RUN <<EOF
echo plain > /plain.txt
EOF
RUN cat > /fed.txt <<EOF
fed through stdin
EOF
RUN --network=none tail -n +3 /proc/net/dev | wc -l > /none.txt
RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && ls /scratch > /tmpfs.txt
RUN --mount=type=bind,source=ctx,target=/ctx cat /ctx/in.txt > /bound.txt && ! touch /ctx/ro 2>/dev/null
`,
		"ctx/in.txt": "from the context\n",
	})
	r, out := e.mustBuild(dir, nil)
	root := rootfsOf(t, onlyImage(t, r))
	want := map[string]string{
		"script.txt": "script /dev/pipes/EOF\n", "plain.txt": "plain\n", "fed.txt": "fed through stdin\n",
		"none.txt": "1\n", "tmpfs.txt": "t\n", "bound.txt": "from the context\n",
	}
	for f, w := range want {
		if got := readFile(t, root+"/"+f); got != w {
			t.Errorf("/%s: %q want %q\n%s", f, got, w, out)
		}
	}
	fs := tree(t, root)
	for _, p := range []string{"scratch", "ctx", "dev/pipes"} {
		if _, ok := fs[p]; ok {
			t.Errorf("mount point /%s left in the image", p)
		}
	}
}
