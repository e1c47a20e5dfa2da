package inspect

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
	"github.com/berthproject/berth/store"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// hostileELF builds an x86-64 ELF with a PT_INTERP of interpSize bytes
// (claimed in its header, whatever is really there), a PT_DYNAMIC, and
// sections .dynstr (dynstr) and .dynamic holding the given entries.
func hostileELF(interp string, interpSize uint64, dynstr []byte, dyn [][2]uint64) []byte {
	const ehsize, phsize, shsize = 64, 56, 64
	le := binary.LittleEndian
	var body bytes.Buffer
	phoff := uint64(ehsize)
	interpOff := phoff + 2*phsize
	body.WriteString(interp)
	strOff := interpOff + uint64(len(interp))
	body.Write(dynstr)
	dynOff := strOff + uint64(len(dynstr))
	for _, e := range dyn {
		binary.Write(&body, le, e[0])
		binary.Write(&body, le, e[1])
	}
	dynSize := uint64(16 * len(dyn))
	shoff := dynOff + dynSize
	var out bytes.Buffer
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1,
		Phoff: phoff, Shoff: shoff, Ehsize: ehsize, Phentsize: phsize, Phnum: 2, Shentsize: shsize, Shnum: 3}
	copy(h.Ident[:], "\x7fELF")
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	binary.Write(&out, le, h)
	binary.Write(&out, le, elf.Prog64{Type: uint32(elf.PT_INTERP), Off: interpOff, Filesz: interpSize, Memsz: interpSize})
	binary.Write(&out, le, elf.Prog64{Type: uint32(elf.PT_DYNAMIC), Off: dynOff, Filesz: dynSize, Memsz: dynSize})
	out.Write(body.Bytes())
	binary.Write(&out, le, elf.Section64{})
	binary.Write(&out, le, elf.Section64{Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(dynstr))})
	binary.Write(&out, le, elf.Section64{Type: uint32(elf.SHT_DYNAMIC), Off: dynOff, Size: dynSize, Link: 1, Entsize: 16})
	return out.Bytes()
}

// allocated is the bytes fn allocates.
func allocated(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func TestHostileELFHeaders(t *testing.T) {
	interp := "/lib64/ld-linux-x86-64.so.2\x00"
	good := hostileELF(interp, uint64(len(interp)), []byte("\x00libc.so.6\x00/opt/lib\x00"),
		[][2]uint64{{uint64(elf.DT_NEEDED), 1}, {uint64(elf.DT_RUNPATH), 11}, {uint64(elf.DT_NULL), 0}})
	info := parseELF(good)
	if info == nil || info.Interp != "/lib64/ld-linux-x86-64.so.2" || strings.Join(info.Needed, ",") != "libc.so.6" || strings.Join(info.RunPath, ",") != "/opt/lib" {
		t.Fatalf("well-formed ELF parsed as %+v", info)
	}

	// A PT_INTERP whose header claims 1 TB: the kernel refuses any
	// longer than PATH_MAX with ENOEXEC; allocating what the header says
	// killed doctor.
	huge := hostileELF(interp, 1<<40, []byte("\x00"), nil)
	var got *ELFInfo
	if n := allocated(func() { got = parseELF(huge) }); n > 1<<20 {
		t.Errorf("parsing a %d-byte ELF with a 1 TB PT_INTERP allocated %d bytes", len(huge), n)
	}
	if got != nil {
		t.Errorf("ELF with a 1 TB PT_INTERP parsed as %+v, want not executable (nil)", got)
	}
	for _, size := range []uint64{0, 1, pathMax + 1} {
		if got := parseELF(hostileELF(interp, size, []byte("\x00"), nil)); got != nil {
			t.Errorf("PT_INTERP of %d bytes accepted: %+v", size, got)
		}
	}

	// 4096 DT_NEEDED entries all naming one 64 KiB string: 192 KiB of
	// file, 256 MiB of strings when each entry is copied whole.
	long := append(bytes.Repeat([]byte("A"), 64<<10), 0)
	var dyn [][2]uint64
	for i := 0; i < 4096; i++ {
		dyn = append(dyn, [2]uint64{uint64(elf.DT_NEEDED), 0})
	}
	bomb := hostileELF(interp, uint64(len(interp)), long, dyn)
	if n := allocated(func() { got = parseELF(bomb) }); n > 16<<20 {
		t.Errorf("parsing a %d-byte ELF allocated %d bytes", len(bomb), n)
	}
	if got == nil || len(got.Needed) != 1 || len(got.Needed[0]) != pathMax {
		t.Errorf("needed = %d names, want one, cut at %d bytes", len(got.Needed), pathMax)
	}

	// Many distinct names: kept up to maxDynStrings.
	var names bytes.Buffer
	dyn = nil
	names.WriteByte(0)
	for i := 0; i < 3*maxDynStrings; i++ {
		dyn = append(dyn, [2]uint64{uint64(elf.DT_NEEDED), uint64(names.Len())})
		fmt.Fprintf(&names, "lib%d.so\x00", i)
	}
	if got = parseELF(hostileELF(interp, uint64(len(interp)), names.Bytes(), dyn)); got == nil || len(got.Needed) != maxDynStrings {
		t.Errorf("needed = %d names, want %d", len(got.Needed), maxDynStrings)
	}
}

// Conf files that include each other (or themselves through a glob):
// each is read once, and the search list holds each directory once.
func TestHostileLdSoConfIncludes(t *testing.T) {
	files := map[string]file{
		"etc/ld.so.conf": {data: "include /etc/ld.so.conf.d/*.conf\n/usr/local/lib\n"},
	}
	for i := 0; i < 4; i++ {
		files[fmt.Sprintf("etc/ld.so.conf.d/%d.conf", i)] = file{data: fmt.Sprintf("include /etc/ld.so.conf\ninclude *.conf\n/opt/%d\n/usr/local/lib\n", i)}
	}
	fs, err := ReadFS(imageOf(t, v1.Config{}, layerOf(t, files)))
	if err != nil {
		t.Fatal(err)
	}
	dirs := fs.searchDirs(elf.EM_X86_64, false)
	want := "/opt/3 /usr/local/lib /opt/2 /opt/1 /opt/0 /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib64 /usr/lib64 /lib /usr/lib"
	if got := strings.Join(dirs, " "); got != want {
		if len(got) > 300 {
			got = got[:300] + fmt.Sprintf("... (%d dirs)", len(dirs))
		}
		t.Errorf("search dirs %s\nwant %s", got, want)
	}
}

// Big config files are kept in memory up to a budget for the image, an
// ELF file of more than maxInMemELF is parsed from a temp file, and a
// name longer than PATH_MAX is refused (a 1 MB "a/a/a..." implied half a
// million directories, each holding its own path).
func TestHostileSizes(t *testing.T) {
	files := map[string]file{}
	mb := strings.Repeat("x", maxKeptFile)
	for i := 0; i < maxKept/maxKeptFile+16; i++ {
		files[fmt.Sprintf("etc/ld.so.conf.d/%03d.conf", i)] = file{data: mb}
	}
	fs, err := ReadFS(imageOf(t, v1.Config{}, layerOf(t, files)))
	if err != nil {
		t.Fatal(err)
	}
	var kept int
	fs.Walk(func(n *Node) { kept += len(n.data) })
	if kept > maxKept {
		t.Errorf("%d bytes of config files kept in memory, want at most %d", kept, maxKept)
	}

	interp := "/lib64/ld-linux-x86-64.so.2\x00"
	elfData := hostileELF(interp, uint64(len(interp)), []byte("\x00libc.so.6\x00"), [][2]uint64{{uint64(elf.DT_NEEDED), 1}})
	big := string(elfData) + strings.Repeat("\x00", maxInMemELF+1)
	img := imageOf(t, v1.Config{}, layerOf(t, map[string]file{"app": {mode: 0o755, data: big}}))
	if n := allocated(func() { fs, err = ReadFS(img) }); n > maxInMemELF/2 {
		t.Errorf("reading a %d MB ELF allocated %d MB", len(big)>>20, n>>20)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := fs.lookup("/app"); n == nil || n.ELF == nil || n.ELF.Interp != "/lib64/ld-linux-x86-64.so.2" || strings.Join(n.ELF.Needed, ",") != "libc.so.6" {
		t.Errorf("large ELF parsed as %+v", n)
	}

	long := strings.Repeat("a/", 8<<10) + "f"
	_, err = ReadFS(imageOf(t, v1.Config{}, layerOf(t, map[string]file{long: {data: "x"}})))
	if err == nil || !strings.Contains(err.Error(), "PATH_MAX") {
		t.Errorf("a %d-byte name: %v, want refused", len(long), err)
	}
	_, err = ReadFS(imageOf(t, v1.Config{}, layerOf(t, map[string]file{"l": {link: long}})))
	if err == nil || !strings.Contains(err.Error(), "PATH_MAX") {
		t.Errorf("a %d-byte symlink target: %v, want refused", len(long), err)
	}
}

// zeroLayer is a layer holding name: head followed by zeros up to size,
// streamed (never in memory whole).
func zeroLayer(t *testing.T, name string, head []byte, size int64) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: size, Typeflag: tar.TypeReg})
			tw.Write(head)
			io.CopyN(tw, zeros{}, size-int64(len(head)))
			pw.CloseWithError(tw.Close())
		}()
		return pr, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Slim streams kept files into its layer: it held every kept file in
// memory, twice (a 10 GB entrypoint of zeros is a few MB of gzip).
func TestHostileSlimBigFile(t *testing.T) {
	elfData := hostileELF("", 0, []byte("\x00"), nil)
	// A static ELF: no PT_INTERP (hostileELF always adds one; blank it).
	binary.LittleEndian.PutUint32(elfData[64:], uint32(elf.PT_NOTE))
	const size = 192 << 20
	img := imageOf(t, v1.Config{Entrypoint: []string{"/app"}}, zeroLayer(t, "app", elfData, size))
	var res *SlimResult
	var err error
	n := allocated(func() { res, err = Slim(img, nil) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	if n > size/4 {
		t.Errorf("slim of a %d MB entrypoint allocated %d MB", size>>20, n>>20)
	}
	fs, err := ReadFS(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	if a := fs.lookup("/app"); a == nil || a.Size != size || a.ELF == nil {
		t.Errorf("slim image's /app: %+v", a)
	}
	tmp := res.tmp
	res.Close()
	if _, err := os.Stat(tmp); err == nil {
		t.Errorf("Close left %s", tmp)
	}
}

// What doctor and slim read is the image, never the host: paths climbing
// out and symlinks pointing at host files resolve inside the view.
func TestHostileSymlinksStayInImage(t *testing.T) {
	bin := staticGo(t)
	img := scratchImage(t, bin, map[string]file{
		"etc/os-release": {link: "../../../../etc/os-release"},
		"data":           {link: "/../../../etc"},
		"etc/passwd":     {link: "/proc/self/root/etc/passwd"},
	})
	r := mustDoctor(t, "links", img)
	if r.OS != "none" || len(r.Users) != 0 {
		t.Errorf("doctor read the host: os %q users %v", r.OS, r.Users)
	}
	for _, inc := range []string{"../../../etc/shadow", "/data/shadow", "/data/hostname"} {
		if _, err := Slim(img, []string{inc}); err == nil || !strings.Contains(err.Error(), "no such path in the image") {
			t.Errorf("--include %s: %v, want no such path in the image", inc, err)
		}
	}
}

// The report prints the image's words (os-release, passwd, names, the
// config): escape sequences in them reach the terminal as '?'.
func TestHostileEscapesInReport(t *testing.T) {
	esc := "\x1b]52;c;aGk=\x07\x1b[2J\u009b31m"
	img := imageOf(t, v1.Config{Entrypoint: []string{"/bin/" + esc}, User: esc}, layerOf(t, map[string]file{
		"etc/os-release":  {data: "PRETTY_NAME=\"Evil " + esc + "\"\n"},
		"etc/passwd":      {data: "root" + esc + ":x:0:0::/:/bin/sh\n"},
		"big" + esc:       {data: strings.Repeat("x", 4096)},
		"tmp" + esc + "/": {mode: 0o777},
	}))
	r := mustDoctor(t, "esc"+esc, img)
	var one, cmp bytes.Buffer
	r.WriteText(&one)
	WriteCompare(&cmp, []*Report{r, r})
	for name, out := range map[string]string{"doctor": one.String(), "compare": cmp.String()} {
		if strings.ContainsAny(out, "\x1b\x07\u009b") {
			t.Errorf("%s output carries the image's escape sequences: %q", name, out)
		}
		if !strings.Contains(out, "Evil ?]52;c;aGk=??[2J?31m") {
			t.Errorf("%s output lacks the os name with its escapes as '?': %q", name, out)
		}
	}
}

// A target pid that belongs to a host process (the container exited and
// its pid was reused) is refused: the toolbox would have joined the
// host's pid and net namespaces, /target the host's root.
func TestDebugRefusesHostProcess(t *testing.T) {
	fixture.RequireRoot(t)
	host := exec.Command("sleep", "60")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Process.Kill(); host.Wait() })
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tb := imageOf(t, v1.Config{Cmd: []string{"sh"}}, layerOf(t, map[string]file{"bin/": {}}))
	ran := false
	run := func(id, dir string, stdio []*os.File, sock string) (int, error) { ran = true; return 0, nil }
	_, err = Debug(s, run, tb, DebugOptions{Pid: host.Process.Pid, WorkDir: t.TempDir(), Cmd: []string{"true"}})
	if err == nil || !strings.Contains(err.Error(), "root is the host's") || ran {
		t.Errorf("debug of a host process: %v (toolbox run: %v), want refused", err, ran)
	}
}

// Library lookups are bounded for a view: objects x names x search dirs
// is the image's to choose (here a low bound stands for a huge image).
func TestHostileLookupBudget(t *testing.T) {
	old := maxLookups
	maxLookups = 500
	t.Cleanup(func() { maxLookups = old })
	interp := "/lib64/ld-linux-x86-64.so.2\x00"
	var names bytes.Buffer
	var dyn [][2]uint64
	names.WriteByte(0)
	for i := 0; i < 100; i++ {
		dyn = append(dyn, [2]uint64{uint64(elf.DT_NEEDED), uint64(names.Len())})
		fmt.Fprintf(&names, "libnone%d.so\x00", i)
	}
	app := hostileELF(interp, uint64(len(interp)), names.Bytes(), dyn)
	img := imageOf(t, v1.Config{Entrypoint: []string{"/app"}}, layerOf(t, map[string]file{"app": {mode: 0o755, data: string(app)}}))
	r := mustDoctor(t, "lookups", img)
	if !strings.Contains(strings.Join(r.Entry.Problems, "\n"), "analysis stopped after 500 library lookups") {
		t.Errorf("problems %q, want the analysis stopped", r.Entry.Problems)
	}
	if _, err := Slim(img, nil); err == nil || !strings.Contains(err.Error(), "too complex") {
		t.Errorf("slim: %v, want refused as too complex", err)
	}
}
