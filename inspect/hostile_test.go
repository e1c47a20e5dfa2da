package inspect

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
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
