package engine

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	goruntime "runtime"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// StartError is a failure to start the container's process, with the exit
// status docker gives it: 126 cannot execute, 127 not found, 125 other.
type StartError struct {
	Code int
	Msg  string
}

func (e *StartError) Error() string { return e.Msg }

// hostPlatform is os/arch of this berth binary's host.
func hostPlatform() string { return goruntime.GOOS + "/" + goruntime.GOARCH }

// binfmtDir is where the kernel lists binfmt_misc handlers
// (BERTH_BINFMT_MISC points elsewhere, for tests of the refusal).
var binfmtDir = func() string {
	if d := os.Getenv("BERTH_BINFMT_MISC"); d != "" {
		return d
	}
	return "/proc/sys/fs/binfmt_misc"
}()

// elfIdent is the ELF header prefix (20 bytes: ident, e_type, e_machine)
// of an executable for each GOARCH: what a binfmt_misc magic must match.
func elfIdent(arch string) []byte {
	type id struct {
		class, data byte
		machine     uint16
	}
	m := map[string]id{
		"amd64": {2, 1, 62}, "386": {1, 1, 3}, "arm64": {2, 1, 183}, "arm": {1, 1, 40},
		"riscv64": {2, 1, 243}, "ppc64le": {2, 1, 21}, "ppc64": {2, 2, 21}, "s390x": {2, 2, 22},
		"mips64le": {2, 1, 8}, "mipsle": {1, 1, 8}, "loong64": {2, 1, 258},
	}
	v, ok := m[arch]
	if !ok {
		return nil
	}
	h := []byte{0x7f, 'E', 'L', 'F', v.class, v.data, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if v.data == 1 {
		h[16], h[18], h[19] = 2, byte(v.machine), byte(v.machine>>8)
	} else {
		h[17], h[18], h[19] = 2, byte(v.machine>>8), byte(v.machine)
	}
	return h
}

// binfmtHandler returns the name of an enabled binfmt_misc handler that
// runs ELF executables of arch, or "".
func binfmtHandler(arch string) string {
	hdr := elfIdent(arch)
	if hdr == nil {
		return ""
	}
	if b, err := os.ReadFile(filepath.Join(binfmtDir, "status")); err != nil || strings.TrimSpace(string(b)) != "enabled" {
		return ""
	}
	ents, _ := os.ReadDir(binfmtDir)
	for _, ent := range ents {
		if ent.Name() == "status" || ent.Name() == "register" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(binfmtDir, ent.Name()))
		if err != nil {
			continue
		}
		var enabled bool
		var offset int
		var magic, mask []byte
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case line == "enabled":
				enabled = true
			case strings.HasPrefix(line, "offset "):
				fmt.Sscanf(line, "offset %d", &offset)
			case strings.HasPrefix(line, "magic "):
				magic, _ = hex.DecodeString(strings.TrimPrefix(line, "magic "))
			case strings.HasPrefix(line, "mask "):
				mask, _ = hex.DecodeString(strings.TrimPrefix(line, "mask "))
			}
		}
		if !enabled || len(magic) == 0 || offset+len(magic) > len(hdr) {
			continue
		}
		ok := true
		for i := range magic {
			mk := byte(0xff)
			if i < len(mask) {
				mk = mask[i]
			}
			if hdr[offset+i]&mk != magic[i]&mk {
				ok = false
				break
			}
		}
		if ok {
			return ent.Name()
		}
	}
	return ""
}

// checkPlatform refuses an image built for another OS or CPU unless the
// kernel can run its binaries through a binfmt_misc handler (qemu-user).
func checkPlatform(platform string) error {
	if platform == "" {
		return nil
	}
	parts := strings.Split(platform, "/")
	osName, arch := parts[0], ""
	if len(parts) > 1 {
		arch = parts[1]
	}
	if osName != "" && osName != goruntime.GOOS {
		return fmt.Errorf("image platform %s does not match the host platform %s: berth runs only %s images", platform, hostPlatform(), goruntime.GOOS)
	}
	if arch == "" || arch == goruntime.GOARCH {
		return nil
	}
	if binfmtHandler(arch) != "" {
		return nil
	}
	return fmt.Errorf("image platform %s does not match the host platform %s, and no binfmt_misc handler for %s is enabled (install qemu-user-static, mount binfmt_misc and run `update-binfmts --enable`)", platform, hostPlatform(), arch)
}

// resolveExecutable finds the process's argv[0] in the rootfs the way
// execvp would inside the container (PATH search for a bare name), with
// every symlink resolved inside the rootfs. It returns the path inside the
// container, or a StartError with docker's 126/127.
func resolveExecutable(rootfs, arg0, cwd string, env []string) (string, error) {
	if arg0 == "" {
		return "", &StartError{127, "empty command"}
	}
	var candidates []string
	if strings.Contains(arg0, "/") {
		p := arg0
		if !path.IsAbs(p) {
			p = path.Join(cwd, p)
		}
		candidates = []string{p}
	} else {
		pathEnv, _ := envLookup(env, "PATH")
		for _, d := range strings.Split(pathEnv, ":") {
			if d == "" {
				d = "."
			}
			if !path.IsAbs(d) {
				d = path.Join(cwd, d)
			}
			candidates = append(candidates, path.Join(d, arg0))
		}
	}
	var permErr error
	for _, p := range candidates {
		f, err := pathrs.OpenInRoot(rootfs, p)
		if err != nil {
			continue
		}
		st, err := f.Stat()
		f.Close()
		if err != nil {
			continue
		}
		if st.IsDir() {
			permErr = &StartError{126, fmt.Sprintf("%s: is a directory: permission denied", p)}
			continue
		}
		if st.Mode()&0o111 == 0 {
			permErr = &StartError{126, fmt.Sprintf("%s: permission denied (not executable)", p)}
			continue
		}
		return p, nil
	}
	if permErr != nil {
		return "", permErr
	}
	if strings.Contains(arg0, "/") {
		return "", &StartError{127, fmt.Sprintf("%s: no such file or directory", arg0)}
	}
	return "", &StartError{127, fmt.Sprintf("%q: executable file not found in $PATH", arg0)}
}

// checkInterpreter explains the bare ENOENT a dynamically linked program
// gets when the image lacks its ELF interpreter (seed 001), and the same
// for a script whose #! interpreter is missing.
func checkInterpreter(rootfs, p string) error {
	f, err := openInRootfs(rootfs, p)
	if err != nil {
		return nil
	}
	defer f.Close()
	head := make([]byte, 256)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if bytes.HasPrefix(head, []byte("#!")) {
		line, _, _ := bytes.Cut(head[2:], []byte("\n"))
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			return nil
		}
		if !rootfsHas(rootfs, fields[0]) {
			return &StartError{127, fmt.Sprintf("%s: its interpreter %s (from the #! line) is not in the image", p, fields[0])}
		}
		return nil
	}
	if !bytes.HasPrefix(head, []byte(elf.ELFMAG)) {
		return nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil
	}
	for _, prog := range ef.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil
		}
		interp := string(bytes.TrimRight(b, "\x00"))
		if !rootfsHas(rootfs, interp) {
			return &StartError{127, fmt.Sprintf("%s: the binary is dynamically linked and needs %s, which the image does not have: build it static or use a base image with glibc", p, interp)}
		}
	}
	return nil
}

// rootfsHas reports whether p exists in rootfs (symlinks resolved inside).
func rootfsHas(rootfs, p string) bool {
	f, err := pathrs.OpenInRoot(rootfs, p)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// isNotExist also matches the ELOOP/ENOTDIR that resolution may give.
func isNotExist(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR)
}
