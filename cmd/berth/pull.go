package main

import (
	"errors"
	"fmt"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berthproject/berth/registry"
	"github.com/berthproject/berth/store"
)

// pullingStore is the store as run, create and build see it: an image
// they name that the store lacks is pulled first, as docker's do; with
// always (--pull), each is pulled once anyway. missing, if set, is told
// of an image the store lacked before it is pulled.
type pullingStore struct {
	*store.Store
	always  bool
	missing func(ref string)
	mu      sync.Mutex
	pulled  map[string]error
}

func newPullingStore(s *store.Store, always bool, missing func(string)) *pullingStore {
	return &pullingStore{Store: s, always: always, missing: missing, pulled: map[string]error{}}
}

func (p *pullingStore) Image(ref, platform string) (v1.Image, error) {
	img, err := p.Store.Image(ref, platform)
	if err != nil && !errors.Is(err, store.ErrNotFound) || err == nil && !p.always {
		return img, err
	}
	key := ref + "\x00" + platform
	p.mu.Lock()
	perr, tried := p.pulled[key]
	if !tried {
		if err != nil && p.missing != nil {
			p.missing(ref)
		}
		ctx, cancel := regContext()
		_, perr = registry.Pull(ctx, p.Store, ref, registry.Options{Platform: platform})
		cancel()
		p.pulled[key] = perr
	}
	p.mu.Unlock()
	if perr != nil {
		if err != nil {
			return nil, fmt.Errorf("%w, and pulling it failed: %v", err, perr)
		}
		return nil, perr
	}
	return p.Store.Image(ref, platform)
}
