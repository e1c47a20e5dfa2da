package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
)

// Independent stages build at the same time: both RUNs start before
// either finishes. Stages the target does not need are not built.
func TestStageGraph(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	e.importBusybox("busybox")
	dir := writeContext(t, map[string]string{"Dockerfile": `FROM busybox AS a
RUN sleep 1 && echo a > /a

FROM busybox AS b
RUN sleep 1 && echo b > /b

FROM busybox AS unused
RUN echo never-built; exit 1

FROM scratch AS final
COPY --from=a /a /a
COPY --from=1 /b /b
`})
	r, out := e.mustBuild(dir, nil)
	if strings.Contains(out, "unused") {
		t.Errorf("an unneeded stage was built:\n%s", out)
	}
	ia := strings.Index(out, "[a 2/2] RUN")
	ib := strings.Index(out, "[b 2/2] RUN")
	da := strings.Index(out, "[a 2/2] DONE")
	db := strings.Index(out, "[b 2/2] DONE")
	if ia < 0 || ib < 0 || da < 0 || db < 0 || max(ia, ib) > min(da, db) {
		t.Errorf("stages a and b did not overlap:\n%s", out)
	}
	fs := tree(t, rootfsOf(t, onlyImage(t, r)))
	if strings.Join(keys(fs), " ") != "a b" {
		t.Errorf("final rootfs %v", keys(fs))
	}
	// --target builds that stage and what it needs only.
	r2, out2 := e.mustBuild(dir, func(o *Options) { o.Target = "b" })
	if strings.Contains(out2, "[a ") || strings.Contains(out2, "[final ") {
		t.Errorf("--target b built other stages:\n%s", out2)
	}
	if _, ok := tree(t, rootfsOf(t, onlyImage(t, r2)))["b"]; !ok {
		t.Errorf("--target b: no /b")
	}
	if _, _, err := e.build(dir, func(o *Options) { o.Target = "nope" }); err == nil || !strings.Contains(err.Error(), "--target nope: no such stage") {
		t.Errorf("bad --target: %v", err)
	}
}

// Tags, --label, --build-arg (predefined platform ARGs too) and a
// warning for build args nothing declares.
func TestTagsLabelsArgs(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{"Dockerfile": `ARG TAG=one
FROM scratch AS s-one
ARG TARGETOS TARGETARCH BUILDPLATFORM
ARG GREETING=hi
LABEL os=$TARGETOS arch=$TARGETARCH build=$BUILDPLATFORM greeting=$GREETING
COPY Dockerfile /
`})
	r, out := e.mustBuild(dir, func(o *Options) {
		o.Tags = []string{"x:1", "example.com/y:2"}
		o.Labels = map[string]string{"extra": "yes"}
		o.BuildArgs = map[string]string{"GREETING": "hello", "UNUSED": "1"}
	})
	l := configOf(t, onlyImage(t, r)).Config.Labels
	if l["greeting"] != "hello" || l["extra"] != "yes" || l["os"] != "linux" || l["arch"] == "" || !strings.HasPrefix(l["build"], "linux/") {
		t.Errorf("labels %v", l)
	}
	for _, tag := range []string{"x:1", "example.com/y:2"} {
		if _, err := e.store.Image(tag, ""); err != nil {
			t.Errorf("tag %s: %v", tag, err)
		}
	}
	if !strings.Contains(out, "build-args not consumed by any ARG: UNUSED") {
		t.Errorf("no warning for UNUSED:\n%s", out)
	}
	if !strings.Contains(out, "[s-one 1/5] FROM scratch AS s-one") {
		t.Errorf("step lines:\n%s", out)
	}
}

// COPY --link layers do not depend on what is below: after the base
// changes, the linked step is reused while an unlinked one reruns.
func TestCopyLinkSurvivesBaseChange(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{
		"base/Dockerfile": "FROM scratch\nCOPY v /v\n", "base/v": "1",
		"Dockerfile": "FROM mybase\nCOPY --link big /big\nCOPY small /small\n", "big": "B", "small": "S",
	})
	build := func() string {
		e.mustBuild(filepath.Join(dir, "base"), func(o *Options) { o.Tags = []string{"mybase"} })
		_, out := e.mustBuild(dir, nil)
		return out
	}
	build()
	os.WriteFile(filepath.Join(dir, "base", "v"), []byte("2"), 0o644)
	out := build()
	c, ran := cachedSteps(out)
	if strings.Join(c, "|") != "COPY --link big /big" || strings.Join(ran, "|") != "COPY small /small" {
		t.Errorf("after base change: cached %v ran %v\n%s", c, ran, out)
	}
}

// Containerfile is the fallback name; -f picks another file.
func TestDockerfileNames(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{"Containerfile": "FROM scratch\nLABEL from=containerfile\n", "other.df": "FROM scratch\nLABEL from=other\n"})
	r, _ := e.mustBuild(dir, nil)
	if l := configOf(t, onlyImage(t, r)).Config.Labels["from"]; l != "containerfile" {
		t.Errorf("default name: %q", l)
	}
	r, _ = e.mustBuild(dir, func(o *Options) { o.Dockerfile = filepath.Join(dir, "other.df") })
	if l := configOf(t, onlyImage(t, r)).Config.Labels["from"]; l != "other" {
		t.Errorf("-f: %q", l)
	}
	empty := t.TempDir()
	if _, _, err := e.build(empty, nil); err == nil || !strings.Contains(err.Error(), "no Dockerfile or Containerfile") {
		t.Errorf("no Dockerfile: %v", err)
	}
}

// COPY --from and RUN --mount from= also take images from the store.
func TestCopyFromImage(t *testing.T) {
	e := newEnv(t)
	e.importBusybox("busybox")
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY --from=busybox /bin/busybox /bb\nCOPY --from=busybox /etc/passwd /etc/\n"})
	r, out := e.mustBuild(dir, nil)
	fs := tree(t, rootfsOf(t, onlyImage(t, r)))
	if fs["bb"].Type != "file" || fs["bb"].Mode != 0o755 || fs["etc/passwd"].Type != "file" {
		t.Errorf("rootfs %v\n%s", fs, out)
	}
}

func TestParserWarnings(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM scratch\nLABEL a=1 \\\n\n  b=2\n"})
	r, out := e.mustBuild(dir, nil)
	if !strings.Contains(out, "WARNING: Dockerfile:") || configOf(t, onlyImage(t, r)).Config.Labels["b"] != "2" {
		t.Errorf("warning or labels:\n%s", out)
	}
}

// The escape directive and .containerignore (podman's name).
func TestEscapeDirectiveAndContainerignore(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile":       "# escape=`\nFROM scratch\nLABEL a=one `\n  b=two\nCOPY . /c/\n",
		".containerignore": "skip.txt\n",
		"skip.txt":         "x", "keep.txt": "y",
	})
	r, out := e.mustBuild(dir, nil)
	img := onlyImage(t, r)
	if l := configOf(t, img).Config.Labels; l["a"] != "one" || l["b"] != "two" {
		t.Errorf("labels %v\n%s", l, out)
	}
	fs := tree(t, rootfsOf(t, img))
	if _, ok := fs["c/skip.txt"]; ok {
		t.Errorf(".containerignore not honoured")
	}
	if _, ok := fs["c/keep.txt"]; !ok {
		t.Errorf("keep.txt missing")
	}
}
