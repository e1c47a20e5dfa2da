package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berthproject/berth/store"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// hostile is a registry that serves whatever the test puts in it, under
// repository x, and notes every request.
type hostile struct {
	mu        sync.Mutex
	manifests map[string][]byte // tag or digest -> body
	types     map[string]types.MediaType
	blobs     map[string][]byte // digest -> body
	hits      []string          // "METHOD path"
	auths     []string          // Authorization headers seen
}

func newHostile() *hostile {
	return &hostile{manifests: map[string][]byte{}, types: map[string]types.MediaType{}, blobs: map[string][]byte{}}
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// manifest serves body under its digest and tag (if not "").
func (h *hostile) manifest(tag string, mt types.MediaType, body []byte) string {
	d := digestOf(body)
	for _, k := range []string{d, tag} {
		if k != "" {
			h.manifests[k], h.types[k] = body, mt
		}
	}
	return d
}

// image serves img's blobs and manifest.
func (h *hostile) image(t *testing.T, tag string, img v1.Image) string {
	t.Helper()
	cfg, _ := img.RawConfigFile()
	h.blobs[digestOf(cfg)] = cfg
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, _ := l.Compressed()
		var b bytes.Buffer
		b.ReadFrom(rc)
		rc.Close()
		h.blobs[digestOf(b.Bytes())] = b.Bytes()
	}
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	return h.manifest(tag, mt, raw)
}

func (h *hostile) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.hits = append(h.hits, r.Method+" "+r.URL.Path)
	if a := r.Header.Get("Authorization"); a != "" {
		h.auths = append(h.auths, a)
	}
	h.mu.Unlock()
	switch p := r.URL.Path; {
	case p == "/v2/":
		w.WriteHeader(http.StatusOK)
	case strings.HasPrefix(p, "/v2/x/manifests/"):
		k := strings.TrimPrefix(p, "/v2/x/manifests/")
		body, ok := h.manifests[k]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", string(h.types[k]))
		w.Write(body)
	case strings.HasPrefix(p, "/v2/x/blobs/"):
		body, ok := h.blobs[strings.TrimPrefix(p, "/v2/x/blobs/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	default:
		http.NotFound(w, r)
	}
}

func (h *hostile) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string{}, h.hits...)
}

// serveHostile starts h on 127.0.0.1 and returns host:port.
func serveHostile(t *testing.T, h *hostile) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Pulls through ggcr spoke plain HTTP to registries on private addresses
// (and sent login passwords that way) although --tls-verify defaults to
// true: a man in the middle on the LAN could read the credentials and
// hand over any image. Here every connection, whatever address it names,
// reaches a plain-HTTP server: it must see no request at all unless
// --tls-verify=false.
func TestPlainHTTPOnlyToLoopback(t *testing.T) {
	h := newHostile()
	h.image(t, "1", mustRandom(t))
	addr := serveHostile(t, h)
	testDial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	t.Cleanup(func() { testDial = nil })
	auth := filepath.Join(t.TempDir(), "auth.json")
	for _, reg := range []string{"10.1.2.3:5000", "192.168.7.7", "172.20.0.1:443", "registry.example.com"} {
		s := openStore(t)
		if _, err := Pull(context.Background(), s, reg+"/x:1", Options{AuthFile: auth}); err == nil {
			t.Errorf("pull from %s over plain HTTP succeeded with TLS verification on", reg)
		} else if !strings.Contains(err.Error(), "--tls-verify=false") {
			t.Errorf("pull from %s: %v, want a hint at --tls-verify=false", reg, err)
		}
		if err := Login(context.Background(), reg, "user", "secret", Options{AuthFile: auth}); err == nil {
			t.Errorf("login to %s over plain HTTP succeeded with TLS verification on", reg)
		}
		if got := h.requests(); len(got) != 0 {
			t.Errorf("%s: the plain-HTTP server got %v with TLS verification on", reg, got)
		}
		if len(h.auths) != 0 {
			t.Fatalf("%s: credentials went over plain HTTP: %v", reg, h.auths)
		}
	}
	if _, err := os.Stat(auth); err == nil {
		t.Error("a failed login saved credentials")
	}
	// The same registry with --tls-verify=false is reached.
	if _, err := Pull(context.Background(), openStore(t), "10.1.2.3:5000/x:1", Options{Insecure: true, AuthFile: auth}); err != nil {
		t.Errorf("insecure pull: %v", err)
	}
	// Loopback is plain HTTP without asking, as docker.
	testDial = nil
	if _, err := Pull(context.Background(), openStore(t), addr+"/x:1", Options{AuthFile: auth}); err != nil {
		t.Errorf("pull from %s: %v", addr, err)
	}
}

func mustRandom(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// padded is a valid JSON document of more than the store's limit:
// doc followed by whitespace.
func padded(doc []byte) []byte {
	return append(append([]byte{}, doc...), bytes.Repeat([]byte(" "), store.MaxJSONBlob+1-len(doc)+1)...)
}

// pullRefused pulls ref and wants an error mentioning want, with the
// store as it was.
func pullRefused(t *testing.T, addr, ref string, o Options, want string) []string {
	t.Helper()
	s := openStore(t)
	before := treeDigest(t, s.Root)
	_, err := Pull(context.Background(), s, addr+"/x:"+ref, o)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("pull %s: error %v, want one saying %q", ref, err, want)
	}
	if treeDigest(t, s.Root) != before {
		t.Errorf("pull %s: a refused pull changed the store", ref)
	}
	return nil
}

// Configs and manifests larger than the store reads back (or with no
// size at all) are refused before they are read: ggcr reads a config
// whole, whatever size the manifest claims.
func TestPullRefusesHugeConfigAndManifest(t *testing.T) {
	h := newHostile()
	img := mustRandom(t)
	h.image(t, "ok", img)
	m, _ := img.Manifest()
	cfg, _ := img.RawConfigFile()

	big := padded(cfg)
	bigCfg := *m
	bigCfg.Config.Digest, _ = v1.NewHash(digestOf(big))
	bigCfg.Config.Size = int64(len(big))
	h.blobs[bigCfg.Config.Digest.String()] = big
	raw, _ := json.Marshal(bigCfg)
	h.manifest("bigconfig", m.MediaType, raw)

	unsized := bigCfg
	unsized.Config.Size = -1
	raw, _ = json.Marshal(unsized)
	h.manifest("unsized", m.MediaType, raw)

	raw, _ = json.Marshal(m)
	h.manifest("bigmanifest", m.MediaType, padded(raw))

	addr := serveHostile(t, h)
	pullRefused(t, addr, "bigconfig", Options{}, "refused")
	pullRefused(t, addr, "unsized", Options{}, "refused")
	pullRefused(t, addr, "bigmanifest", Options{}, "refused")
	for _, r := range h.requests() {
		if strings.HasSuffix(r, bigCfg.Config.Digest.String()) {
			t.Errorf("the huge config was fetched: %s", r)
		}
	}
	if _, err := Pull(context.Background(), openStore(t), addr+"/x:ok", Options{}); err != nil {
		t.Errorf("the well-formed image: %v", err)
	}
}

// A chain of indexes each holding the next, deeper than any real one.
func TestPullRefusesDeepIndexes(t *testing.T) {
	h := newHostile()
	img := mustRandom(t)
	child := h.image(t, "", img)
	raw, _ := img.RawManifest()
	desc := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(child, "sha256:")},
		Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}
	m, _ := img.MediaType()
	desc.MediaType = m
	for depth := 0; depth <= maxIndexDepth+1; depth++ {
		body, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{desc}})
		d := h.manifest(fmt.Sprintf("depth%d", depth), types.OCIImageIndex, body)
		desc = v1.Descriptor{MediaType: types.OCIImageIndex, Size: int64(len(body)), Digest: v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(d, "sha256:")}}
	}
	addr := serveHostile(t, h)
	pullRefused(t, addr, fmt.Sprintf("depth%d", maxIndexDepth+1), Options{AllPlatforms: true}, "nested")
	if _, err := Pull(context.Background(), openStore(t), addr+fmt.Sprintf("/x:depth%d", maxIndexDepth-1), Options{AllPlatforms: true}); err != nil {
		t.Errorf("indexes %d deep: %v", maxIndexDepth, err)
	}
}

// A blob whose bytes are not what its digest says is refused, the store
// unchanged; so is a config whose diff_ids do not name its layers.
func TestPullRefusesWrongBlobs(t *testing.T) {
	h := newHostile()
	img := mustRandom(t)
	h.image(t, "swapped", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	good := h.blobs[ld.String()]
	bad := append([]byte{}, good...)
	bad[len(bad)/2] ^= 0xff
	h.blobs[ld.String()] = bad
	addr := serveHostile(t, h)
	pullRefused(t, addr, "swapped", Options{}, "")

	h.blobs[ld.String()] = good
	cf, _ := img.ConfigFile()
	cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	cfg, _ := json.Marshal(cf)
	m, _ := img.Manifest()
	m.Config.Digest, _ = v1.NewHash(digestOf(cfg))
	m.Config.Size = int64(len(cfg))
	h.blobs[m.Config.Digest.String()] = cfg
	raw, _ := json.Marshal(m)
	h.manifest("lyingdiffid", m.MediaType, raw)
	pullRefused(t, addr, "lyingdiffid", Options{}, "refused")
}

// The auth file is written through a fresh temp file: a symlink (or a
// world-readable file) planted at the old fixed name auth.json.tmp got
// the credentials.
func TestLoginAuthFileNotThroughPlantedTemp(t *testing.T) {
	addr := serveHostile(t, newHostile())
	dir := t.TempDir()
	auth := filepath.Join(dir, "auth.json")
	leak := filepath.Join(t.TempDir(), "leak")
	if err := os.WriteFile(leak, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(leak, auth+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := Login(context.Background(), addr, "user", "secret", Options{AuthFile: auth}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(leak); len(data) != 0 {
		t.Errorf("credentials written through the planted symlink: %q", data)
	}
	fi, err := os.Lstat(auth)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth file: %v %v, want a regular file of mode 0600", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 { // auth.json and the planted link, no temp left over
		t.Errorf("auth dir holds %d entries, want 2", len(ents))
	}
	a, err := fileKeychain{auth}.Resolve(mustRegistry(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	if cfg, _ := a.Authorization(); cfg.Password != "secret" {
		t.Errorf("saved credentials %+v", cfg)
	}
}

func mustRegistry(t *testing.T, addr string) name.Registry {
	r, err := name.NewRegistry(addr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A registry's words (error messages, platform names) reach the terminal
// with their control characters as '?'.
func TestPullErrorsPrintable(t *testing.T) {
	h := newHostile()
	esc := "\x1b]52;c;aGk=\x07\x1b[2J"
	body, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
		MediaType: types.OCIManifestSchema1, Size: 2, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)},
		Platform: &v1.Platform{OS: "plan9" + esc, Architecture: "mips"}}}})
	h.manifest("index", types.OCIImageIndex, body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/manifests/gone") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			msg, _ := json.Marshal("not here" + esc)
			fmt.Fprintf(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":%s}]}`, msg)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, ref := range []string{"gone", "index"} {
		_, err := Pull(context.Background(), openStore(t), addr+"/x:"+ref, Options{})
		if err == nil || strings.ContainsAny(err.Error(), "\x1b\x07") || !strings.Contains(err.Error(), "?]52;c;aGk=??[2J") {
			t.Errorf("pull %s: %q, want the registry's escapes as '?'", ref, err)
		}
	}
}

// A registry that takes credentials and redirects blob fetches to
// another host (as registries do to object stores): the credentials stay
// with the registry.
func TestRedirectKeepsCredentials(t *testing.T) {
	other := newHostile()
	h := newHostile()
	img := mustRandom(t)
	h.image(t, "1", img)
	for d, b := range h.blobs {
		other.blobs[d] = b
	}
	otherAddr := serveHostile(t, other)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="hostile"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/v2/x/blobs/") {
			http.Redirect(w, r, "http://"+otherAddr+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	auth := filepath.Join(t.TempDir(), "auth.json")
	if err := Login(context.Background(), addr, "user", "secret", Options{AuthFile: auth}); err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(context.Background(), openStore(t), addr+"/x:1", Options{AuthFile: auth}); err != nil {
		t.Fatal(err)
	}
	if len(other.requests()) == 0 {
		t.Fatal("no blob was fetched from the redirect target")
	}
	if len(other.auths) != 0 {
		t.Errorf("the redirect target got the registry's credentials: %v", other.auths)
	}
}
