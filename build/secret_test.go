package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
)

// RUN --mount=type=secret: the step reads the secret (as a file, or an
// environment variable with env=), and no layer holds it, nor its mount
// point; a required secret the build was not given fails the step, an
// optional one is left out; type=ssh is refused, not ignored.
func TestSecretMounts(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	e.importBusybox("busybox")
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\n" +
		"RUN --mount=type=secret,id=tok tr a-z A-Z < /run/secrets/tok > /from-file; stat -c %a /run/secrets/tok > /mode\n" +
		"RUN --mount=type=secret,id=tok,env=TOKEN,target=/deep/s echo \"$TOKEN\" | tr a-z A-Z > /from-env\n" +
		"RUN --mount=type=secret,id=absent ls /run/secrets > /optional 2>&1 || true\n"})
	res, out := e.mustBuild(dir, func(o *Options) { o.Secrets = map[string][]byte{"tok": []byte("s3cr3t")} })
	img := onlyImage(t, res)
	root := rootfsOf(t, img)
	for f, want := range map[string]string{"from-file": "S3CR3T", "from-env": "S3CR3T\n", "mode": "400\n"} {
		if b, _ := os.ReadFile(filepath.Join(root, f)); string(b) != want {
			t.Errorf("/%s = %q, want %q\n%s", f, b, want, out)
		}
	}
	for p := range tree(t, root) {
		// (a mount point's parents stay, as under buildah; the point goes)
		if p == "run/secrets/tok" || p == "deep/s" {
			t.Errorf("the image holds %s, a secret's mount point", p)
		}
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, _ := l.Uncompressed()
		b := make([]byte, 1<<20)
		n, _ := rc.Read(b)
		for n > 0 {
			if strings.Contains(string(b[:n]), "s3cr3t") {
				t.Error("a layer holds the secret")
			}
			n, _ = rc.Read(b)
		}
		rc.Close()
	}
	if cf, _ := img.RawConfigFile(); strings.Contains(string(cf), "s3cr3t") {
		t.Error("the image config holds the secret")
	}
	req := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=need,required cat /run/secrets/need\n"})
	if _, _, err := e.build(req, nil); err == nil || !strings.Contains(err.Error(), "id=need") {
		t.Errorf("a missing required secret: %v", err)
	}
	ssh := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN --mount=type=ssh true\n"})
	if _, _, err := e.build(ssh, nil); err == nil || !strings.Contains(err.Error(), "ssh") {
		t.Errorf("type=ssh: %v", err)
	}
}
