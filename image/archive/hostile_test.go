package archive

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
)

// TestLoadRefusesHugeConfig: a config (or manifest) is read whole, so one
// of many GB, which a gzip archive of a few MB can hold, would take that
// much memory. Past store.MaxJSONBlob it is refused, leaving the store as
// it was.
func TestLoadRefusesHugeConfig(t *testing.T) {
	dst := openStore(t)
	before := treeDigest(t, dst.Root)
	cfg := `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"pad":"` + strings.Repeat("x", 17<<20) + `"}`
	cfgSum := sha256.Sum256([]byte(cfg))
	man := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%x","size":%d},"layers":[]}`, cfgSum, len(cfg))
	manSum := sha256.Sum256([]byte(man))
	for name, files := range map[string]map[string]string{
		"docker": {"c.json": cfg, "manifest.json": `[{"Config":"c.json","RepoTags":["x:1"],"Layers":[]}]`},
		"oci": {
			"oci-layout":                           `{"imageLayoutVersion":"1.0.0"}`,
			fmt.Sprintf("blobs/sha256/%x", cfgSum): cfg,
			fmt.Sprintf("blobs/sha256/%x", manSum): man,
			"index.json":                           fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%x","size":%d,"annotations":{"org.opencontainers.image.ref.name":"localhost/big:1"}}]}`, manSum, len(man)),
		},
	} {
		_, err := Load(dst, bytes.NewReader(tarOf(t, files)))
		if err == nil || !strings.Contains(err.Error(), "too large") {
			t.Errorf("%s: err = %v, want too large", name, err)
		}
		if treeDigest(t, dst.Root) != before {
			t.Fatalf("%s: the refused archive changed the store", name)
		}
	}
}
