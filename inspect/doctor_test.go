package inspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/fixture"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func scratchImage(t testing.TB, bin string, extra map[string]file) v1.Image {
	files := map[string]file{"app": {mode: 0o755, data: readFile(t, bin)}}
	for k, v := range extra {
		files[k] = v
	}
	return imageOf(t, v1.Config{Entrypoint: []string{"/app"}}, layerOf(t, files))
}

func TestDoctorStaticGoInScratch(t *testing.T) {
	bin := staticGo(t)
	r := mustDoctor(t, "go-scratch", scratchImage(t, bin, nil))
	t.Log(dump(r))
	p := r.Entry.Program
	if r.OS != "none" || r.Libc != "none" || r.Shell != "" || len(r.PackageManagers) != 0 {
		t.Errorf("os=%q libc=%q shell=%q pm=%v, want none everywhere", r.OS, r.Libc, r.Shell, r.PackageManagers)
	}
	if p == nil || !p.Found || p.Kind != "elf" || p.Linkage != "static" || p.Arch != "amd64" {
		t.Fatalf("entrypoint = %+v, want a static amd64 ELF", p)
	}
	if len(r.Entry.Problems) != 0 {
		t.Errorf("problems %v for a static binary", r.Entry.Problems)
	}
	if r.Files != 1 || !r.RunsAsRoot {
		t.Errorf("files=%d root=%v", r.Files, r.RunsAsRoot)
	}
	if !strings.HasPrefix(r.Verdict[0], "entrypoint is statically linked and the image holds little else") {
		t.Errorf("verdict %q", r.Verdict[0])
	}
}

func TestDoctorStaticGoOnDebian(t *testing.T) {
	bin := staticGo(t)
	img := imageOf(t, v1.Config{Entrypoint: []string{"/app"}}, debianLayer(t), layerOf(t, map[string]file{"app": {mode: 0o755, data: readFile(t, bin)}}))
	r := mustDoctor(t, "go-debian", img)
	// scratch needs the binary, passwd/group and (kept by slim) tzdata.
	want := fmt.Sprintf("entrypoint is statically linked: FROM scratch would be %s instead of %s", MB(r.Slim.Bytes), MB(r.Size))
	if r.Verdict[0] != want || r.Slim.Bytes > int64(len(readFile(t, bin)))+2<<20 {
		t.Errorf("verdict %q (slim %d bytes), want %q", r.Verdict[0], r.Slim.Bytes, want)
	}
}

func TestDoctorDynamicCInScratch(t *testing.T) {
	bin := dynamicC(t)
	r := mustDoctor(t, "c-scratch", scratchImage(t, bin, nil))
	t.Log(dump(r))
	p := r.Entry.Program
	if p.Linkage != "dynamic" || p.Libc != "glibc" || p.Closure.Interp != "/lib64/ld-linux-x86-64.so.2" {
		t.Fatalf("entrypoint = %+v closure %+v", p, p.Closure)
	}
	var names []string
	for _, m := range p.Closure.Missing {
		names = append(names, m.Name)
	}
	if strings.Join(names, " ") != "/lib64/ld-linux-x86-64.so.2 libc.so.6" {
		t.Errorf("missing = %v, want the interpreter and libc.so.6", names)
	}
	want := "libc.so.6: cannot open shared object file: No such file or directory (needed by /app)"
	if !contains(r.Entry.Problems, want) {
		t.Errorf("problems %q lack %q", r.Entry.Problems, want)
	}
	if !strings.Contains(r.Verdict[0], "will not start") || !strings.Contains(r.Verdict[1], "build it static") {
		t.Errorf("verdict %q", r.Verdict)
	}
}

func TestDoctorCOnDebian(t *testing.T) {
	bin := dynamicC(t)
	img := imageOf(t, v1.Config{Cmd: []string{"hello"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}},
		debianLayer(t), layerOf(t, map[string]file{"usr/local/bin/hello": {mode: 0o755, data: readFile(t, bin)}}))
	r := mustDoctor(t, "c-debian", img)
	t.Log(dump(r))
	if r.OS != "Debian GNU/Linux 12 (bookworm)" || r.OSID != "debian" {
		t.Errorf("os = %q id %q", r.OS, r.OSID)
	}
	if r.Libc != "glibc 2.36" {
		t.Errorf("libc = %q, want glibc 2.36", r.Libc)
	}
	if r.Shell != "/bin/sh -> /usr/bin/dash" || !contains(r.Shells, "bash") {
		t.Errorf("shell = %q shells %v", r.Shell, r.Shells)
	}
	if strings.Join(r.PackageManagers, ",") != "dpkg,apt" {
		t.Errorf("package managers = %v", r.PackageManagers)
	}
	p := r.Entry.Program
	if p.Path != "/usr/local/bin/hello" || p.Linkage != "dynamic" || len(r.Entry.Problems) != 0 {
		t.Fatalf("entrypoint %+v problems %v", p, r.Entry.Problems)
	}
	if got := p.Closure.Libs["libc.so.6"]; got != "/usr/lib/x86_64-linux-gnu/libc.so.6" {
		t.Errorf("libc.so.6 => %q", got)
	}
	if len(r.Layers) != 2 || r.Layers[1].Bytes != int64(len(readFile(t, bin))) {
		t.Errorf("layers %+v", r.Layers)
	}
	if len(r.Setuid) == 0 || !r.RunsAsRoot || r.Tzdata < 100 {
		t.Errorf("setuid %v root %v tz %d", r.Setuid, r.RunsAsRoot, r.Tzdata)
	}
	// The distroless-style base: loader + libc, nothing else for this program.
	if len(r.Slim.Runtime) != 2 {
		t.Errorf("runtime files %v, want ld-linux and libc", r.Slim.Runtime)
	}
	if !strings.HasPrefix(r.Verdict[0], "dynamic glibc binary: a distroless-style base needs these 2 files") {
		t.Errorf("verdict %q", r.Verdict[0])
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(r); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	json.Unmarshal(buf.Bytes(), &back)
	if back["libc"] != "glibc 2.36" {
		t.Errorf("json libc = %v", back["libc"])
	}
}

func TestDoctorLayersWhiteoutsAndModes(t *testing.T) {
	l1 := layerOf(t, map[string]file{
		"big":                {data: strings.Repeat("x", 1000)},
		"dir/":               {},
		"dir/a":              {data: strings.Repeat("a", 300)},
		"dir/b":              {data: strings.Repeat("b", 200)},
		"keep":               {data: "k"},
		"shadow":             {data: strings.Repeat("s", 50)},
		"usr/bin/su":         {mode: 0o4755, data: "\x7fELF-not-really"},
		"tmp/":               {mode: 0o1777},
		"scratchpad/":        {mode: 0o777},
		"etc/passwd":         {data: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534::/:/usr/sbin/nologin\n"},
		"etc/os-release":     {link: "../usr/lib/os-release"},
		"usr/lib/os-release": {data: "NAME=\"Test OS\"\nVERSION=\"1\"\nID=test\n"},
	})
	l2 := layerOf(t, map[string]file{
		".wh.big":          {},
		"dir/.wh..wh..opq": {},
		"dir/c":            {data: "cc"},
		"shadow":           {data: "t"},
	})
	img := imageOf(t, v1.Config{User: "app", Entrypoint: []string{"/nope"}}, l1, l2)
	r := mustDoctor(t, "layers", img)
	t.Log(dump(r))
	if r.Wasted != 1000+300+200+50 || r.Layers[1].Wasted != r.Wasted || r.Layers[0].Wasted != 0 {
		t.Errorf("wasted %d layers %+v", r.Wasted, r.Layers)
	}
	if r.OS != "Test OS 1" {
		t.Errorf("os %q", r.OS)
	}
	// files left: dir/c keep shadow su passwd os-release
	if r.Files != 6 || r.Size != 2+1+1+int64(len("\x7fELF-not-really"))+int64(len("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534::/:/usr/sbin/nologin\n"))+int64(len("NAME=\"Test OS\"\nVERSION=\"1\"\nID=test\n")) {
		t.Errorf("files %d size %d", r.Files, r.Size)
	}
	if len(r.Setuid) != 1 || !strings.HasPrefix(r.Setuid[0], "/usr/bin/su (setuid") {
		t.Errorf("setuid %v", r.Setuid)
	}
	if strings.Join(r.WorldWritable, " ") != "/scratchpad" {
		t.Errorf("world-writable %v", r.WorldWritable)
	}
	if r.RunsAsRoot || strings.Join(r.Users, " ") != "root(0) app(1000)" {
		t.Errorf("root %v users %v", r.RunsAsRoot, r.Users)
	}
	if r.Entry.Program.Found || !strings.Contains(r.Verdict[0], "/nope: not found") {
		t.Errorf("verdict %q", r.Verdict)
	}
}

func TestDoctorShebangThroughEnv(t *testing.T) {
	bb := readFile(t, "/bin/busybox")
	img := imageOf(t, v1.Config{Entrypoint: []string{"run.sh"}, WorkingDir: "/app", Env: []string{"PATH=/app:/bin"}}, layerOf(t, map[string]file{
		"bin/busybox": {mode: 0o755, data: bb},
		"bin/env":     {link: "busybox"},
		"app/run.sh":  {mode: 0o755, data: "#!/bin/env lua\nprint(1)\n"},
	}))
	r := mustDoctor(t, "env", img)
	t.Log(dump(r))
	want := "lua: not found in the image: exec fails with \"no such file or directory\""
	if len(r.Entry.Problems) != 1 || r.Entry.Problems[0] != want {
		t.Errorf("problems %q, want %q", r.Entry.Problems, want)
	}
}

func TestDoctorCompare(t *testing.T) {
	bin := staticGo(t)
	a := mustDoctor(t, "go-scratch", scratchImage(t, bin, nil))
	b := mustDoctor(t, "c-scratch", scratchImage(t, dynamicC(t), nil))
	var buf bytes.Buffer
	WriteCompare(&buf, []*Report{a, b})
	t.Log("\n" + buf.String())
	lines := strings.Split(buf.String(), "\n")
	if !strings.Contains(lines[0], "go-scratch") || !strings.Contains(lines[0], "c-scratch") {
		t.Errorf("header %q", lines[0])
	}
	var ep string
	for _, l := range lines {
		if strings.HasPrefix(l, "entrypoint") {
			ep = strings.Join(strings.Fields(l), " ")
		}
	}
	if ep != "entrypoint static BROKEN" {
		t.Errorf("entrypoint row %q", ep)
	}
}

func muslC(t testing.TB) string {
	fixture.RequireBinary(t, "musl-gcc", "musl-tools")
	return build(t, "hello-musl", func(dir string) *exec.Cmd {
		os.WriteFile(filepath.Join(dir, "hello.c"), []byte(helloC), 0o644)
		cmd := exec.Command("musl-gcc", "-O2", "-o", "hello-musl", "hello.c")
		cmd.Dir = dir
		return cmd
	})
}

// muslImage is scratch plus the musl program and musl's loader laid out
// as Debian's musl package does (the loader a symlink to libc.so).
func muslImage(t testing.TB) v1.Image {
	return imageOf(t, v1.Config{Entrypoint: []string{"/app"}}, layerOf(t, map[string]file{
		"app":                           {mode: 0o755, data: readFile(t, muslC(t))},
		"lib/ld-musl-x86_64.so.1":       {link: "x86_64-linux-musl/libc.so"},
		"lib/x86_64-linux-musl/libc.so": {mode: 0o755, data: readFile(t, "/lib/x86_64-linux-musl/libc.so")},
		"etc/passwd":                    {data: "root:x:0:0:root:/root:/bin/sh\n"},
	}))
}

func TestDoctorMusl(t *testing.T) {
	r := mustDoctor(t, "musl", muslImage(t))
	t.Log(dump(r))
	p := r.Entry.Program
	if r.Libc != "musl" || p.Libc != "musl" || p.Linkage != "dynamic" || len(r.Entry.Problems) != 0 {
		t.Fatalf("libc %q program %+v problems %v", r.Libc, p, r.Entry.Problems)
	}
	if got := p.Closure.Libs["libc.so"]; got != "/lib/x86_64-linux-musl/libc.so" {
		t.Errorf("libc.so => %q", got)
	}
	// Without its loader the same program is seed 001's trap, musl flavour:
	// the loader is musl's libc, so only it is named.
	img := imageOf(t, v1.Config{Entrypoint: []string{"/app"}}, layerOf(t, map[string]file{"app": {mode: 0o755, data: readFile(t, muslC(t))}}))
	r = mustDoctor(t, "musl-scratch", img)
	if len(r.Entry.Problems) != 1 || !strings.Contains(r.Entry.Problems[0], "/lib/ld-musl-x86_64.so.1 not found") {
		t.Errorf("problems %q", r.Entry.Problems)
	}
}

// greet builds a program linked against its own libgreet.so, found
// through the RUNPATH $ORIGIN/../lib, and the library itself.
func greet(t testing.TB) (prog, lib string) {
	fixture.RequireBinary(t, "gcc", "gcc")
	dir := filepath.Dir(build(t, "greet", func(dir string) *exec.Cmd {
		os.WriteFile(filepath.Join(dir, "lib.c"), []byte("#include <stdio.h>\nvoid greet(void){ puts(\"hello from libgreet\"); }\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "main.c"), []byte("void greet(void);\nint main(){ greet(); return 0; }\n"), 0o644)
		return exec.Command("sh", "-c", "cd "+dir+" && gcc -shared -fPIC -o libgreet.so lib.c && gcc -o greet main.c -L. -lgreet -Wl,--enable-new-dtags,-rpath,'$ORIGIN/../lib'")
	}))
	return filepath.Join(dir, "greet"), filepath.Join(dir, "libgreet.so")
}

func TestDoctorRunpathOriginAndLdSoConf(t *testing.T) {
	prog, lib := greet(t)
	deb := debianLayer(t)
	cases := []struct {
		name  string
		files map[string]file
		want  string // where libgreet.so resolves, "" = missing
	}{
		{"origin", map[string]file{"opt/app/bin/greet": {mode: 0o755, data: readFile(t, prog)}, "opt/app/lib/libgreet.so": {mode: 0o755, data: readFile(t, lib)}}, "/opt/app/lib/libgreet.so"},
		{"ld.so.conf.d", map[string]file{"opt/app/bin/greet": {mode: 0o755, data: readFile(t, prog)}, "opt/other/libgreet.so": {mode: 0o755, data: readFile(t, lib)},
			"etc/ld.so.conf.d/other.conf": {data: "# extra\n/opt/other\n"}}, "/opt/other/libgreet.so"},
		{"missing", map[string]file{"opt/app/bin/greet": {mode: 0o755, data: readFile(t, prog)}}, ""},
	}
	for _, c := range cases {
		r := mustDoctor(t, c.name, imageOf(t, v1.Config{Entrypoint: []string{"/opt/app/bin/greet"}}, deb, layerOf(t, c.files)))
		cl := r.Entry.Program.Closure
		if got := cl.Libs["libgreet.so"]; got != c.want {
			t.Errorf("%s: libgreet.so => %q, want %q", c.name, got, c.want)
		}
		if c.want == "" && (len(r.Entry.Problems) != 1 || r.Entry.Problems[0] != "libgreet.so: cannot open shared object file: No such file or directory (needed by /opt/app/bin/greet)") {
			t.Errorf("%s: problems %q", c.name, r.Entry.Problems)
		}
		if c.want != "" && len(r.Entry.Problems) != 0 {
			t.Errorf("%s: problems %q", c.name, r.Entry.Problems)
		}
	}
}

func TestDoctorForeignArch(t *testing.T) {
	if goruntime.GOARCH != "amd64" {
		t.Skip("fixtures assume an amd64 host")
	}
	bin := build(t, "hello-arm64", func(dir string) *exec.Cmd {
		os.WriteFile(filepath.Join(dir, "main.go"), []byte(helloGo), 0o644)
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\ngo 1.21\n"), 0o644)
		cmd := exec.Command(goBin(t), "build", "-o", "hello-arm64", ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH=arm64")
		return cmd
	})
	img := scratchImage(t, bin, nil) // config says amd64
	r := mustDoctor(t, "arm64-in-amd64", img)
	if r.Entry.Program.Arch != "arm64" || len(r.Entry.Problems) != 1 || r.Entry.Problems[0] != "/app: built for arm64 but the image config says amd64" {
		t.Errorf("arch %q problems %q", r.Entry.Program.Arch, r.Entry.Problems)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Architecture = "arm64"
	img2, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	r = mustDoctor(t, "arm64", img2)
	if r.Platform != "linux/arm64" || len(r.Entry.Problems) != 1 || !strings.HasPrefix(r.Entry.Problems[0], "/app: built for arm64, host is amd64") {
		t.Errorf("platform %s problems %q", r.Platform, r.Entry.Problems)
	}
}

// busybox's dpkg applet is not a package manager: no database behind it.
func TestDoctorBusyboxAppletIsNoPackageManager(t *testing.T) {
	img := imageOf(t, v1.Config{}, layerOf(t, map[string]file{
		"bin/busybox":  {data: "\x7fELF"},
		"usr/bin/dpkg": {link: "/bin/busybox"},
		"sbin/apk":     {link: "../bin/busybox"},
	}))
	r, err := Doctor("bb", img)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.PackageManagers) != 0 {
		t.Errorf("package managers %v in a busybox image", r.PackageManagers)
	}
}
