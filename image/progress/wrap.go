package progress

import (
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Reporter is what the wrappers report to (a *Printer, or any
// store.Progress).
type Reporter interface {
	Start(id string, total int64)
	Update(id string, done int64)
	Done(id string, err error)
}

// Image wraps img so that reading any layer's compressed stream (push,
// save) reports bytes per layer to r.
func Image(img v1.Image, r Reporter) v1.Image {
	if r == nil {
		return img
	}
	return &image{Image: img, r: r}
}

// Index wraps idx so its images report like Image.
func Index(idx v1.ImageIndex, r Reporter) v1.ImageIndex {
	if r == nil {
		return idx
	}
	return &index{base: idx, r: r}
}

type image struct {
	v1.Image
	r Reporter
}

func (i *image) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for n, l := range ls {
		out[n] = &layer{Layer: l, r: i.r}
	}
	return out, nil
}

func (i *image) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return &layer{Layer: l, r: i.r}, nil
}

type index struct {
	base
	r Reporter
}

// base lets index embed a v1.ImageIndex while overriding its ImageIndex
// method (a field cannot share the method's name).
type base = v1.ImageIndex

func (x *index) Image(h v1.Hash) (v1.Image, error) {
	img, err := x.base.Image(h)
	if err != nil {
		return nil, err
	}
	return Image(img, x.r), nil
}

func (x *index) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	c, err := x.base.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return Index(c, x.r), nil
}

type layer struct {
	v1.Layer
	r Reporter
}

func (l *layer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	d, _ := l.Digest()
	size, _ := l.Size()
	id := d.Hex
	if len(id) > 12 {
		id = id[:12]
	}
	l.r.Start(id, size)
	return &counted{rc: rc, id: id, r: l.r}, nil
}

type counted struct {
	rc   io.ReadCloser
	id   string
	r    Reporter
	n    int64
	done bool
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.n += int64(n)
	c.r.Update(c.id, c.n)
	if err != nil && !c.done {
		c.done = true
		if err == io.EOF {
			c.r.Done(c.id, nil)
		} else {
			c.r.Done(c.id, err)
		}
	}
	return n, err
}

func (c *counted) Close() error {
	if !c.done {
		c.done = true
		c.r.Done(c.id, nil)
	}
	return c.rc.Close()
}
