package build

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// buildContext is the directory a build reads COPY/ADD sources from,
// minus what .dockerignore (or .containerignore) excludes.
type buildContext struct {
	dir    string
	view   *fsView
	ignore *patternmatcher.PatternMatcher // nil: nothing excluded
}

func openContext(dir string) (*buildContext, error) {
	c := &buildContext{dir: dir, view: &fsView{layers: []string{dir}}}
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		// podman/buildah's name for the same file
		f, err = os.Open(filepath.Join(dir, ".containerignore"))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pats, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, err
	}
	if len(pats) == 0 {
		return c, nil
	}
	if c.ignore, err = patternmatcher.New(pats); err != nil {
		return nil, err
	}
	return c, nil
}

// excluded says whether .dockerignore hides rel (slash-separated).
func (c *buildContext) excluded(rel string) bool {
	if c.ignore == nil || rel == "" {
		return false
	}
	m, err := c.ignore.MatchesOrParentMatches(filepath.FromSlash(rel))
	return err == nil && m
}
