package registry

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/berthproject/berth/store"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What a pull accepts from a registry, beyond ggcr's own checks (digests,
// sizes, redirects to private addresses): the registry may be hostile.
const (
	// maxIndexDepth bounds indexes nested in indexes (real ones nest one
	// level, if at all): each level is a request, a registry can make
	// the chain as long as it likes.
	maxIndexDepth = 4
	// maxManifests bounds the images and indexes one pull fetches.
	maxManifests = 4096
)

// secureTransport keeps --tls-verify's promise: ggcr speaks plain HTTP to
// any registry on a private address (10/8, 172.16/12, 192.168/16) or named
// *.localhost, so that credentials and images crossed the network
// unencrypted, open to anyone on the path, while HTTPS was required.
// Unless insecure, a plain-HTTP request to anything but this host's
// loopback goes out over HTTPS instead. Manifest bodies are cut at the
// store's limit (ggcr reads up to 100 MiB, which the store cannot read
// back).
type secureTransport struct {
	base     http.RoundTripper
	insecure bool
}

func (t secureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !t.insecure && !loopback(req.URL.Hostname()) {
		req = req.Clone(req.Context())
		req.URL.Scheme = "https"
	}
	resp, err := t.base.RoundTrip(req)
	if err == nil && strings.Contains(req.URL.Path, "/manifests/") {
		resp.Body = &capped{rc: resp.Body, left: store.MaxJSONBlob}
	}
	return resp, err
}

// loopback tells whether host names this machine: localhost (and, as
// RFC 6761 reserves it, *.localhost) or a loopback address literal.
func loopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// capped fails a read past left bytes.
type capped struct {
	rc   io.ReadCloser
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, fmt.Errorf("manifest of more than %d bytes: refused", store.MaxJSONBlob)
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, fmt.Errorf("manifest of more than %d bytes: refused", store.MaxJSONBlob)
	}
	return n, err
}

func (c *capped) Close() error { return c.rc.Close() }

// pullGuard counts what one pull fetched.
type pullGuard struct {
	mu        sync.Mutex
	manifests int
}

func (g *pullGuard) count() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.manifests++; g.manifests > maxManifests {
		return fmt.Errorf("more than %d images and indexes: refused", maxManifests)
	}
	return nil
}

// image checks a fetched image's manifest before anything reads its
// config: ggcr reads a config whole, of whatever size the manifest
// claims (a negative size is no limit at all), so a registry could make
// berth take many GB of memory.
func (g *pullGuard) image(img v1.Image) (v1.Image, error) {
	if err := g.count(); err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	if c := m.Config; c.Size < 0 || c.Size > store.MaxJSONBlob {
		return nil, fmt.Errorf("config %s of %d bytes: refused (at most %d)", c.Digest, c.Size, store.MaxJSONBlob)
	}
	for _, l := range m.Layers {
		if l.Size < 0 {
			return nil, fmt.Errorf("layer %s of %d bytes: refused", l.Digest, l.Size)
		}
	}
	return img, nil
}

func (g *pullGuard) index(idx v1.ImageIndex, depth int) (v1.ImageIndex, error) {
	if depth > maxIndexDepth {
		return nil, fmt.Errorf("indexes nested more than %d deep: refused", maxIndexDepth)
	}
	if err := g.count(); err != nil {
		return nil, err
	}
	return guardedIndex{inner: idx, g: g, depth: depth}, nil
}

// guardedIndex hands out its children through the guard.
type guardedIndex struct {
	inner v1.ImageIndex
	g     *pullGuard
	depth int
}

func (x guardedIndex) MediaType() (types.MediaType, error)       { return x.inner.MediaType() }
func (x guardedIndex) Digest() (v1.Hash, error)                  { return x.inner.Digest() }
func (x guardedIndex) Size() (int64, error)                      { return x.inner.Size() }
func (x guardedIndex) IndexManifest() (*v1.IndexManifest, error) { return x.inner.IndexManifest() }
func (x guardedIndex) RawManifest() ([]byte, error)              { return x.inner.RawManifest() }

func (x guardedIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := x.inner.Image(h)
	if err != nil {
		return nil, err
	}
	return x.g.image(img)
}

func (x guardedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := x.inner.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return x.g.index(idx, x.depth+1)
}
