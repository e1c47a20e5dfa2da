// Package registry moves images between the store and OCI registries
// (pull, push) through go-containerregistry, and keeps registry
// credentials (login, logout) in berth's own auth file.
package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/berthproject/berth/image/progress"
	"github.com/berthproject/berth/store"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Options tune Pull and Push.
type Options struct {
	// Insecure (--tls-verify=false): plain HTTP or unverified TLS. Plain
	// HTTP is used for localhost and loopback addresses regardless, as
	// docker; anything else (private addresses too) needs HTTPS.
	Insecure     bool
	Platform     string // pull: os/arch[/variant], "" = host
	AllPlatforms bool   // pull: keep the whole index
	// Progress hears about each layer a push sends (nil: silent).
	Progress store.Progress
	// AuthFile overrides berth's auth file (default AuthFile()).
	AuthFile string
}

func (o Options) nameOpts() []name.Option {
	if o.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (o Options) remoteTransport() http.RoundTripper {
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	if o.Insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	if testDial != nil {
		tr.DialContext = testDial
	}
	return secureTransport{base: tr, insecure: o.Insecure}
}

// testDial, set by tests, connects every request to a test server
// whatever host it names.
var testDial func(ctx context.Context, network, addr string) (net.Conn, error)

func (o Options) remoteOpts(ctx context.Context) []remote.Option {
	tr := o.remoteTransport()
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(tr),
		remote.WithAuthFromKeychain(Keychain(o.AuthFile)),
		remote.WithRetryBackoff(remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}),
		remote.WithUserAgent("berth"),
	}
	return opts
}

// oneLine flattens a registry error (they can carry multi-line bodies)
// and says what went wrong in plain words for the common cases.
func oneLine(what string, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%s: authentication required or denied (berth login?): %s", what, flat(err))
		case http.StatusNotFound:
			return fmt.Errorf("%s: not found in the registry: %s", what, flat(err))
		}
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("%s: %s (a plain-HTTP registry: --tls-verify=false to use it)", what, flat(err))
	}
	return fmt.Errorf("%s: %s", what, flat(err))
}

func flat(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// printableError shows control characters of err's text as '?': a
// registry's error messages, platform names and media types are its
// words, and escape sequences in them would drive the user's terminal.
type printableError struct {
	msg string
	err error
}

func (e printableError) Error() string { return e.msg }
func (e printableError) Unwrap() error { return e.err }

func printable(err error) error {
	if err == nil {
		return nil
	}
	msg := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, err.Error())
	if msg == err.Error() {
		return err
	}
	return printableError{msg, err}
}

// Pulled says what Pull stored.
type Pulled struct {
	Name   string  // full name, "" for a pull by digest
	Digest v1.Hash // manifest (or index) digest stored
	ID     v1.Hash // config digest (index digest for --all-platforms)
}

// Pull fetches ref ("busybox", "host:5000/x:1", "x@sha256:...") into s:
// the image for the host (or opts.Platform) from an index, or the whole
// index with AllPlatforms.
func Pull(ctx context.Context, s *store.Store, ref string, o Options) (Pulled, error) {
	res, err := pull(ctx, s, ref, o)
	return res, printable(err)
}

func pull(ctx context.Context, s *store.Store, ref string, o Options) (Pulled, error) {
	if _, err := store.ParsePlatform(o.Platform); err != nil {
		return Pulled{}, err // before anything goes over the network
	}
	r, err := name.ParseReference(ref, o.nameOpts()...)
	if err != nil {
		return Pulled{}, fmt.Errorf("invalid reference %q: %v", ref, err)
	}
	full, err := store.Normalize(ref)
	if err != nil {
		return Pulled{}, err
	}
	var tags []string
	res := Pulled{}
	if _, ok := r.(name.Tag); ok {
		tags = []string{full}
		res.Name = full
	}
	desc, err := remote.Get(r, o.remoteOpts(ctx)...)
	if err != nil {
		return Pulled{}, oneLine("pull "+ref, err)
	}
	guard := &pullGuard{}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err == nil {
			idx, err = guard.index(idx, 0)
		}
		if err != nil {
			return Pulled{}, oneLine("pull "+ref, err)
		}
		if o.AllPlatforms {
			d, err := s.WriteIndex(idx, tags...)
			if err != nil {
				return Pulled{}, oneLine("pull "+ref, err)
			}
			res.Digest, res.ID = d, d
			return res, nil
		}
		want, err := store.ParsePlatform(o.Platform)
		if err != nil {
			return Pulled{}, err
		}
		img, err := store.PickPlatform(idx, want, ref)
		if err != nil {
			return Pulled{}, err
		}
		return writeImage(s, img, tags, res, ref)
	}
	img, err := desc.Image()
	if err == nil {
		img, err = guard.image(img)
	}
	if err != nil {
		return Pulled{}, oneLine("pull "+ref, err)
	}
	if o.Platform != "" {
		want, err := store.ParsePlatform(o.Platform)
		if err != nil {
			return Pulled{}, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return Pulled{}, oneLine("pull "+ref, err)
		}
		if p := cf.Platform(); p == nil || !p.Satisfies(want) {
			return Pulled{}, fmt.Errorf("pull %s: image is for %s, not %s", ref, store.PlatformString(p), store.PlatformString(&want))
		}
	}
	return writeImage(s, img, tags, res, ref)
}

func writeImage(s *store.Store, img v1.Image, tags []string, res Pulled, ref string) (Pulled, error) {
	d, err := s.Write(img, tags...)
	if err != nil {
		return Pulled{}, oneLine("pull "+ref, err)
	}
	res.Digest = d
	res.ID, _ = img.ConfigName()
	return res, nil
}

// Push sends the stored image (or multi-platform index, with all its
// images) src to dst ("" = src's own name) and returns the digest pushed.
func Push(ctx context.Context, s *store.Store, src, dst string, o Options) (v1.Hash, error) {
	d, err := push(ctx, s, src, dst, o)
	return d, printable(err)
}

func push(ctx context.Context, s *store.Store, src, dst string, o Options) (v1.Hash, error) {
	e, err := s.Resolve(src)
	if err != nil {
		return v1.Hash{}, err
	}
	if dst == "" {
		dst = e.Name
		if full, err := store.Normalize(src); err == nil && !strings.Contains(full, "@") && full != e.Name {
			dst = full
		}
	}
	fail := func(err error) (v1.Hash, error) { return v1.Hash{}, err }
	if dst == "" {
		return fail(fmt.Errorf("push %s: the image has no name: give a destination", src))
	}
	ref, err := name.ParseReference(dst, o.nameOpts()...)
	if err != nil {
		return fail(fmt.Errorf("invalid reference %q: %v", dst, err))
	}
	if e.Descriptor.MediaType.IsIndex() {
		idx, err := s.Index(e.Descriptor.Digest)
		if err != nil {
			return fail(err)
		}
		if o.Progress != nil {
			idx = progress.Index(idx, o.Progress)
		}
		if err := remote.WriteIndex(ref, idx, o.remoteOpts(ctx)...); err != nil {
			return v1.Hash{}, oneLine("push "+dst, err)
		}
		return e.Descriptor.Digest, nil
	}
	img, err := s.ImageByDigest(e.Descriptor.Digest)
	if err != nil {
		return fail(err)
	}
	if o.Progress != nil {
		img = progress.Image(img, o.Progress)
	}
	if err := remote.Write(ref, img, o.remoteOpts(ctx)...); err != nil {
		return v1.Hash{}, oneLine("push "+dst, err)
	}
	return e.Descriptor.Digest, nil
}
