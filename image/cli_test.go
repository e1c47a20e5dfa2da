package image

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
	"github.com/berthproject/berth/store"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// berthBin is $BERTH_BIN (make test sets it) or a berth built once here.
func berthBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("BERTH_BIN"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "berth")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/berthproject/berth/cmd/berth").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Skipf("cannot build berth: %v", buildErr)
	}
	return builtBin
}

type cli struct {
	t    *testing.T
	bin  string
	root string
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, bin: berthBin(t), root: t.TempDir()}
}

// run runs berth and returns stdout, stderr and the exit status.
func (c *cli) run(stdin []byte, args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, append([]string{"--root", c.root}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, errs, code := c.run(nil, args...)
	if code != 0 {
		c.t.Fatalf("berth %v: exit %d: %s", args, code, errs)
	}
	return out
}

// fails asserts a one-line error naming want (after any progress
// lines), exit status code.
func (c *cli) fails(code int, want string, args ...string) {
	c.t.Helper()
	_, errs, got := c.run(nil, args...)
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	last := lines[len(lines)-1]
	if got != code || !strings.HasPrefix(last, "berth: ") || !strings.Contains(last, want) || strings.Count(errs, "berth: ") != 1 {
		c.t.Fatalf("berth %v: exit %d, stderr %q; want exit %d and one line with %q", args, got, errs, code, want)
	}
}

func TestCLIImagesLifecycle(t *testing.T) {
	c := newCLI(t)
	tarPath := filepath.Join(t.TempDir(), "bb.tar")
	if err := fixture.BusyboxTar(tarPath); err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(c.ok("import", "-q", "--change", `CMD ["/bin/sh"]`, tarPath, "bb:1"))
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Fatalf("import printed %q, want the image ID", id)
	}
	short := id[7:19]
	// stdin import, dangling.
	data, _ := os.ReadFile(tarPath)
	if out, errs, code := c.run(data, "import", "-q", "-"); code != 0 || !strings.HasPrefix(out, "sha256:") || strings.TrimSpace(out) == id {
		t.Fatalf("import from stdin: %q %q %d", out, errs, code)
	}
	c.ok("tag", "bb:1", "localhost/bb:2")
	out := c.ok("images")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "REPOSITORY") || len(lines) != 4 || !strings.Contains(lines[1], "bb") || !strings.Contains(lines[1], short) {
		t.Fatalf("images:\n%s", out)
	}
	if got := c.ok("images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/*"); got != "localhost/bb:2\n" {
		t.Fatalf("images --format with a filter: %q", got)
	}
	// docker's template rules: \t is a tab, "table" prints aligned headers,
	// a field docker does not have is an error.
	if got := c.ok("images", "--format", `table {{.Repository}}\t{{.Tag}}`, "localhost/*"); !regexp.MustCompile(`^REPOSITORY +TAG\nlocalhost/bb +2\n$`).MatchString(got) {
		t.Fatalf("images --format table: %q", got)
	}
	c.fails(125, "can't evaluate field Nope", "images", "--format", "{{.Nope}}")
	if got := c.ok("images", "--filter", "reference=localhost/*", "--format", "{{.Tag}}"); got != "2\n" {
		t.Fatalf("images --filter reference: %q", got)
	}
	if got := c.ok("images", "--filter", "dangling=true", "-q"); strings.TrimSpace(got) == "" {
		t.Fatalf("images --filter dangling=true lists no dangling image (the stdin import)")
	}
	if got := c.ok("history", "--format", "{{.CreatedBy}}", "bb:1"); !strings.Contains(got, "berth import") {
		t.Fatalf("history --format: %q", got)
	}
	c.fails(125, "cannot write there", "save", "-o", "/proc/nowhere/x.tar", "bb:1")
	var js []map[string]any
	if err := json.Unmarshal([]byte(c.ok("images", "--format", "json")), &js); err != nil || len(js) != 3 {
		t.Fatalf("images --format json: %v %v", js, err)
	}
	var in []map[string]any
	json.Unmarshal([]byte(c.ok("image", "inspect", "bb:1")), &in)
	if len(in) != 1 || in[0]["Id"] != id || in[0]["Os"] != "linux" || in[0]["Config"].(map[string]any)["Cmd"].([]any)[0] != "/bin/sh" {
		t.Fatalf("image inspect: %v", in)
	}
	if h := c.ok("history", "bb:1"); !strings.Contains(h, "berth import") {
		t.Fatalf("history: %s", h)
	}
	// rmi: an image in use is refused; a name is untagged; the last name deletes.
	cdir := filepath.Join(c.root, "containers", "c1")
	os.MkdirAll(cdir, 0o755)
	os.WriteFile(filepath.Join(cdir, "berth.json"), []byte(`{"ImageID":"`+id+`"}`), 0o644)
	if got := c.ok("rmi", "localhost/bb:2"); got != "Untagged: localhost/bb:2\n" {
		t.Fatalf("rmi of one of two names: %q", got)
	}
	c.fails(1, "in use", "rmi", "bb:1")
	os.RemoveAll(cdir)
	if got := c.ok("rmi", "bb:1"); !strings.Contains(got, "Untagged: bb:1") || !strings.Contains(got, "Deleted: "+id) {
		t.Fatalf("rmi of the last name: %q", got)
	}
	// Save/load through the CLI; the dangling stdin import remains.
	c.ok("import", "-q", tarPath, "bb:1")
	arch := filepath.Join(t.TempDir(), "a.tar")
	c.ok("save", "-q", "-o", arch, "bb:1")
	c.ok("rmi", "bb:1")
	if got := c.ok("load", "-q", "-i", arch); got != "Loaded image: bb:1\n" {
		t.Fatalf("load: %q", got)
	}
	if got := c.ok("system", "check"); !strings.HasPrefix(got, "checked ") {
		t.Fatalf("system check: %q", got)
	}
	if got := c.ok("system", "df"); !strings.Contains(got, "Images") {
		t.Fatalf("system df: %q", got)
	}
	if got := c.ok("image", "prune"); !strings.Contains(got, "deleted: ") {
		t.Fatalf("image prune removed nothing: %q", got)
	}
	if got := c.ok("images", "-q"); strings.Count(got, "\n") != 1 {
		t.Fatalf("after prune: %q", got)
	}
}

func TestCLIErrorsAreOneLine(t *testing.T) {
	c := newCLI(t)
	notTar := filepath.Join(t.TempDir(), "x.txt")
	os.WriteFile(notTar, []byte(strings.Repeat("not a tar ", 100)), 0o644)
	c.fails(125, "no such file", "load", "-i", "/nonexistent.tar")
	c.fails(125, "not a docker or OCI archive", "load", "-i", notTar)
	c.fails(125, "no such file", "import", "/nonexistent.tar", "x")
	c.fails(125, "not a valid tar", "import", notTar, "x")
	c.fails(125, "image not known", "save", "-o", filepath.Join(t.TempDir(), "o.tar"), "nope")
	c.fails(125, "image not known", "image", "inspect", "nope")
	c.fails(125, "image not known", "tag", "nope", "x")
	c.fails(1, "image not known", "rmi", "nope")
	c.fails(125, "unknown format", "save", "--format", "zip", "-o", "/tmp/x", "nope")
	c.fails(125, "invalid platform", "import", "--platform", "linux", notTar, "x")
	empty := filepath.Join(t.TempDir(), "empty.tar")
	os.WriteFile(empty, nil, 0o644)
	c.fails(125, "rootfs tarball is empty", "import", empty, "x")
	c.fails(125, "invalid --filter key", "images", "--filter", "bogus=1")
	if out := c.ok("images", "-q"); out != "" {
		t.Fatalf("failed commands left images: %q", out)
	}
}

// import --compression picks the stored layer's encoding; the diffID, and
// so what a container sees, is the same for each, and a zstd image goes
// through save and load unchanged.
func TestCLIImportCompression(t *testing.T) {
	c := newCLI(t)
	tarPath := filepath.Join(t.TempDir(), "bb.tar")
	if err := fixture.BusyboxTar(tarPath); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
		"zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
		"none": "application/vnd.oci.image.layer.v1.tar",
	}
	diffs := map[string]bool{}
	for comp, mt := range want {
		c.ok("import", "-q", "--compression", comp, tarPath, "bb:"+comp)
		s, err := store.Open(c.root)
		if err != nil {
			t.Fatal(err)
		}
		img, err := s.Image("bb:"+comp, "")
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(m.Layers[0].MediaType); got != mt {
			t.Errorf("--compression %s stored %s, want %s", comp, got, mt)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		diffs[cf.RootFS.DiffIDs[0].String()] = true
	}
	if len(diffs) != 1 {
		t.Errorf("the compressions gave different diffIDs: %v", diffs)
	}
	archive := filepath.Join(t.TempDir(), "z.tar")
	c.ok("save", "--format", "oci-archive", "-o", archive, "bb:zstd")
	other := &cli{t: t, bin: c.bin, root: t.TempDir()}
	other.ok("load", "-q", "-i", archive)
	if a, b := c.ok("image", "inspect", "--format", "{{.Id}}", "bb:zstd"), other.ok("image", "inspect", "--format", "{{.Id}}", "bb:zstd"); a != b {
		t.Errorf("zstd image ID %s after save and load, %s before", b, a)
	}
	c.fails(125, "--compression", "import", "--compression", "lz4", tarPath, "bb:lz4")
}
