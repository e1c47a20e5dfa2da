package layer

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
)

// Names, link targets and types that hostile layers combine: climbing
// names, absolute ones, whiteouts, the sentinel beside the target.
var (
	fuzzNames = []string{"a", "b", "a/b", "a/b/c", "..", "../sentinel", "../sentinel/passwd", "/", "/a", ".", "./a",
		"a/../..", ".wh.a", "a/.wh.b", ".wh..wh..opq", "a/.wh..wh..opq", ".wh...", "a/.wh.", "l", "l/x", "l/sentinel/passwd",
		"d/e/f", "//a//b", "a/./b/../c"}
	fuzzLinks = []string{"/", "..", "../..", "../sentinel", "a", "a/b", "/a/b", "../../../etc/shadow", "l", "nope", ""}
	fuzzTypes = []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar, tar.TypeBlock}
)

// tarFromBytes builds a layer from data, three bytes an entry (name, type,
// link target; the type byte's high bits give the mode): arbitrary input
// becomes a well-formed tar of hostile entries, where random bytes would
// mostly fail the header checksum.
func tarFromBytes(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for i := 0; i+2 < len(data) && i < 3*64; i += 3 {
		h := &tar.Header{
			Name:     fuzzNames[int(data[i])%len(fuzzNames)],
			Typeflag: fuzzTypes[int(data[i+1])%len(fuzzTypes)],
			Linkname: fuzzLinks[int(data[i+2])%len(fuzzLinks)],
			Mode:     int64(data[i+1]) << 4 & 0o7777,
			ModTime:  t0,
			Format:   tar.FormatPAX,
		}
		if h.Typeflag == tar.TypeDir && !strings.HasSuffix(h.Name, "/") {
			h.Name += "/"
		}
		body := ""
		if h.Typeflag == tar.TypeReg {
			body = "pwned"
			h.Size = int64(len(body))
		}
		if tw.WriteHeader(h) != nil {
			continue
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return b.Bytes()
}

// FuzzApplyEntries is FuzzApply on well-formed tars of hostile entries.
func FuzzApplyEntries(f *testing.F) {
	f.Add([]byte{18, 2, 0, 19, 0, 0})        // l -> /, then l/x
	f.Add([]byte{18, 2, 3, 20, 0, 0})        // l -> ../sentinel, then l/sentinel/passwd
	f.Add([]byte{0, 1, 0, 1, 3, 7})          // a/, then b hardlink to ../../../etc/shadow
	f.Add([]byte{0, 1, 0, 2, 0, 0, 8, 0, 0}) // a/, a/b, .wh.a
	f.Add([]byte{0, 1, 0, 13, 0, 0, 15, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzOne(t, tarFromBytes(t, data), len(data))
	})
}
