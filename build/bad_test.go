package build

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Bad Dockerfiles fail with their line and a clear message, and leave no
// image tagged.
func TestBadDockerfiles(t *testing.T) {
	cases := []struct {
		name, want string
		root       bool
	}{
		{"unknown-instruction", "Dockerfile:3: unknown instruction: FOO", false},
		{"missing-stage", `Dockerfile:5: COPY --from=nosuch /a /a: --from=nosuch: no stage or image of that name`, false},
		{"missing-image", `Dockerfile:2: FROM no-such-image:1: base image "no-such-image:1"`, false},
		{"copy-outside", `Dockerfile:3: COPY ../secret /secret: source "../secret" is outside the build context`, false},
		{"copy-symlink-escape", `Dockerfile:2: COPY escape/passwd /passwd: source "escape/passwd" is outside the build context (through a symlink)`, false},
		{"bad-arg", "Dockerfile:3: ENV V=\"${VERSION:?VERSION must be set}\": failed to process", false},
		{"missing-source", `Dockerfile:2: COPY nothere.txt /: source "/nothere.txt" not found in the build context`, false},
		{"blank-from", "Dockerfile:3: FROM $BASE: base name ($BASE) should not be blank", false},
		{"failing-run", "Dockerfile:3: RUN echo about-to-fail; exit 3: the command exited with status 3", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.root && os.Geteuid() != 0 {
				t.Skip("needs root to RUN")
			}
			e := newEnv(t)
			if c.root {
				e.importBusybox("busybox")
			}
			dir := filepath.Join(t.TempDir(), c.name)
			if out, err := exec.Command("cp", "-a", filepath.Join("testdata", "bad", c.name), dir).CombinedOutput(); err != nil {
				t.Fatalf("%v %s", err, out)
			}
			if c.name == "copy-symlink-escape" {
				os.Symlink("../../../../../../etc", filepath.Join(dir, "escape"))
			}
			_, out, err := e.build(dir, func(o *Options) { o.Tags = []string{"bad:" + c.name} })
			if err == nil {
				t.Fatalf("build succeeded\n%s", out)
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q\nwant it to contain %q (on one line)", err, c.want)
			}
			if _, err := e.store.Image("bad:"+c.name, ""); err == nil {
				t.Errorf("a failed build tagged an image")
			}
			if c.name == "failing-run" {
				var se *StepError
				if !errors.As(err, &se) || !strings.Contains(se.Tail, "about-to-fail") {
					t.Errorf("no output tail in the error: %#v", se)
				}
				if strings.Contains(out, "never") {
					t.Errorf("a step after the failure ran")
				}
			}
		})
	}
}
