// Package build turns a Dockerfile and its context into OCI images in
// berth's store: stages form a graph built in parallel, COPY/ADD layers
// are written straight from the source files, RUN steps execute in
// berth's own runtime over an overlay of the parent's snapshots, and every
// step is cached by the content it depends on.
package build

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/berthproject/berth/store"
)

// Store is what a build needs of berth's image store (*store.Store).
type Store interface {
	Image(ref, platform string) (v1.Image, error)
	Write(img v1.Image, tags ...string) (v1.Hash, error)
	Snapshots(img v1.Image) ([]string, error)
}

// IndexWriter is implemented by a store that can tag a multi-platform index.
type IndexWriter interface {
	WriteIndex(idx v1.ImageIndex, tags ...string) (v1.Hash, error)
}

// Runner runs an OCI bundle (config.json + rootfs) to completion with the
// given stdin, stdout, stderr and returns its exit status. The CLI passes
// berth's runtime; the interface keeps this package buildable on its own.
type Runner interface {
	RunBundle(id, bundle string, stdio []*os.File) (int, error)
}

// Options describe one `berth build`.
type Options struct {
	Context    string            // build context directory
	Dockerfile string            // path; default <Context>/Dockerfile, else Containerfile
	Tags       []string          // -t, several allowed
	Target     string            // --target stage (default: the last)
	BuildArgs  map[string]string // --build-arg
	NoCache    bool              // --no-cache: run every step, still record results
	Labels     map[string]string // --label, set on the final image
	Network    string            // default RUN network: "host" (default), "none", "bridge" or a network name
	Platforms  []string          // --platform list; empty = the host's
	Output     string            // --output type=oci|docker|local,dest=...
	Progress   string            // plain (default), tty or quiet
	Timestamp  *time.Time        // SOURCE_DATE_EPOCH / --timestamp: reproducible output
	Out        io.Writer         // progress output (default stderr)
	// Secrets are --secret values by id, for RUN --mount=type=secret: in
	// the step's container only, never in a layer or the cache key.
	Secrets map[string][]byte

	StoreRoot string // <root>/build-cache holds the cache
	Store     Store
	Runtime   Runner // runs RUN steps
}

// Result is what a successful build made.
type Result struct {
	ID     v1.Hash             // image ID (config digest) as `berth images` shows it; an index's digest
	Digest v1.Hash             // manifest (or index) digest
	Images map[string]v1.Image // per platform
}

// hostPlatform is the platform RUN steps execute natively.
func hostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}
	if p.Architecture == "arm64" {
		p.Variant = "v8"
	}
	return p
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Build runs the build described by o.
func Build(o Options) (*Result, error) {
	if o.Out == nil {
		o.Out = os.Stderr
	}
	if o.Network == "" {
		o.Network = "host"
	}
	if o.Network == "default" {
		o.Network = "host"
	}
	if err := checkNetwork(o.StoreRoot, o.Network); err != nil {
		return nil, err
	}
	out, err := parseOutput(o.Output)
	if err != nil {
		return nil, err
	}
	ctxDir, err := filepath.Abs(o.Context)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(ctxDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("build context %s: not a directory", o.Context)
	}
	dfPath, err := findDockerfile(ctxDir, o.Dockerfile)
	if err != nil {
		return nil, err
	}
	src, err := os.ReadFile(dfPath)
	if err != nil {
		return nil, err
	}
	df, err := parseDockerfile(filepath.Base(dfPath), src)
	if err != nil {
		return nil, err
	}
	bctx, err := openContext(ctxDir)
	if err != nil {
		return nil, err
	}
	c, err := openCache(o.StoreRoot)
	if err != nil {
		return nil, err
	}
	lock, err := lockFile(c.dir, syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	defer c.saveSums()

	var plats []v1.Platform
	if len(o.Platforms) == 0 {
		plats = []v1.Platform{hostPlatform()}
	}
	for _, ps := range o.Platforms {
		for _, s := range strings.Split(ps, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			p, err := v1.ParsePlatform(s)
			if err != nil {
				return nil, fmt.Errorf("--platform %q: %w", s, err)
			}
			if p.OS == "" {
				p.OS = "linux"
			}
			if err := store.CheckPlatform(p); err != nil {
				return nil, fmt.Errorf("--platform %q: %w", s, err)
			}
			plats = append(plats, *p)
		}
	}
	c.cleanStale()
	work, release, err := c.workDir()
	if err != nil {
		return nil, err
	}
	defer release()
	pr := newPrinter(o.Out, o.Progress)
	for _, w := range df.warnings {
		pr.warn(w)
	}
	bs := make([]*builder, len(plats))
	for i, p := range plats {
		// Expansion rewrites instructions in place: each platform gets its own parse.
		df := df
		if i > 0 {
			if df, err = parseDockerfile(filepath.Base(dfPath), src); err != nil {
				return nil, err
			}
		}
		b, err := newBuilder(&o, df, bctx, c, pr, p, len(plats) > 1)
		if err != nil {
			return nil, err
		}
		b.work = work
		bs[i] = b
	}
	// Fail before building anything when a foreign platform cannot RUN.
	for _, b := range bs {
		if err := b.checkEmulation(); err != nil {
			return nil, err
		}
	}
	res := &Result{Images: map[string]v1.Image{}}
	imgs := make([]v1.Image, len(bs))
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			imgs[i], errs[i] = b.run()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err // one line; other platforms usually fail alike
		}
	}
	for i, b := range bs {
		res.Images[platformString(b.platform)] = imgs[i]
	}
	bs[0].warnUnusedArgs()
	if out.typ != "" {
		res.Digest, err = writeOutput(out, o, plats, imgs)
		res.ID = res.Digest
		if len(imgs) == 1 && err == nil {
			res.ID, err = imgs[0].ConfigName()
		}
		return res, err
	}
	if len(imgs) == 1 {
		res.Digest, err = o.Store.Write(imgs[0], o.Tags...)
		if err != nil {
			return nil, fmt.Errorf("store image: %w", err)
		}
		res.ID, err = imgs[0].ConfigName()
		pr.printf("writing image %s\n", res.ID)
		for _, t := range o.Tags {
			pr.printf("naming to %s\n", t)
		}
		return res, err
	}
	idx, err := makeIndex(plats, imgs)
	if err != nil {
		return nil, err
	}
	iw, ok := o.Store.(IndexWriter)
	if !ok {
		return nil, errors.New("this store cannot hold a multi-platform index yet: use --output type=oci,dest=FILE.tar")
	}
	res.Digest, err = iw.WriteIndex(idx, o.Tags...)
	if err != nil {
		return nil, fmt.Errorf("store index: %w", err)
	}
	res.ID = res.Digest
	pr.printf("writing index %s (%d platforms)\n", res.ID, len(imgs))
	for _, t := range o.Tags {
		pr.printf("naming to %s\n", t)
	}
	return res, nil
}

func findDockerfile(ctxDir, f string) (string, error) {
	if f != "" {
		if f == "-" {
			return "", errors.New("-f -: reading the Dockerfile from stdin is not supported")
		}
		p := f
		if !filepath.IsAbs(p) {
			if _, err := os.Stat(p); err != nil {
				p = filepath.Join(ctxDir, f)
			}
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("Dockerfile %s: %w", f, errors.Unwrap(err))
		}
		return p, nil
	}
	for _, n := range []string{"Dockerfile", "Containerfile"} {
		p := filepath.Join(ctxDir, n)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no Dockerfile or Containerfile in %s (use -f)", ctxDir)
}

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	name     string // file name, for messages
	warnings []string
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	escape   rune
	// runNets: RUN --network values beyond BuildKit's (bridge, a network
	// name), by line.
	runNets map[int]string
}

func parseDockerfile(name string, src []byte) (*dockerfile, error) {
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, locErr(name, err)
	}
	runNets := runNetworkFlags(res.AST.Children)
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, locErr(name, err)
	}
	if len(stages) == 0 {
		return nil, &StepError{File: name, Err: errors.New("no FROM instruction")}
	}
	df := &dockerfile{name: name, stages: stages, metaArgs: metaArgs, escape: res.EscapeToken, runNets: runNets}
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		df.warnings = append(df.warnings, fmt.Sprintf("%s:%d: %s", name, line, w.Short))
	}
	return df, nil
}

// locErr turns a parser error into "Dockerfile:LINE: message".
func locErr(name string, err error) error {
	var le *parser.LocationError
	msg := err.Error()
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		msg = le.Unwrap().Error()
		var ue *instructions.UnknownInstructionError
		if errors.As(err, &ue) {
			msg = fmt.Sprintf("unknown instruction: %s", strings.ToUpper(ue.Instruction))
		}
		return &StepError{File: name, Line: le.Locations[0][0].Start.Line, Err: errors.New(msg)}
	}
	return &StepError{File: name, Err: errors.New(msg)}
}

// StepError is a failed step: where it is in the Dockerfile and why.
type StepError struct {
	File        string
	Line        int
	Instruction string
	Err         error
	Tail        string // last lines of a failed RUN's output
}

func (e *StepError) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	case e.Instruction == "":
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Instruction, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

func stepErr(file string, line int, instruction string, err error) *StepError {
	return &StepError{File: file, Line: line, Instruction: instruction, Err: err}
}

func lineOf(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

// builder builds one platform's image from a Dockerfile.
type builder struct {
	o        *Options
	df       *dockerfile
	ctx      *buildContext
	cache    *cache
	pr       *printer
	platform v1.Platform
	multi    bool // prefix step lines with the platform

	metaEnv  map[string]string // ARGs before FROM, resolved
	stages   []*stageRun
	target   int
	usedArgs sync.Map

	work string // this build's scratch dir (RUN roots, kept upper dirs)
}

func newBuilder(o *Options, df *dockerfile, bctx *buildContext, c *cache, pr *printer, p v1.Platform, multi bool) (*builder, error) {
	b := &builder{o: o, df: df, ctx: bctx, cache: c, pr: pr, platform: p, multi: multi}
	b.metaEnv = map[string]string{}
	for k, v := range b.platformArgs() {
		b.metaEnv[k] = v
	}
	lex := newLex(df.escape)
	for _, a := range df.metaArgs {
		for _, kv := range a.Args {
			if v, ok := o.BuildArgs[kv.Key]; ok {
				b.metaEnv[kv.Key] = v
				b.usedArgs.Store(kv.Key, true)
				continue
			}
			if kv.Value != nil {
				v, err := lex.expand(*kv.Value, mapEnv(b.metaEnv))
				if err != nil {
					return nil, stepErr(df.name, lineOf(a.Location()), "ARG "+kv.Key, err)
				}
				b.metaEnv[kv.Key] = v
			}
		}
	}
	for i := range df.stages {
		st := &df.stages[i]
		name := st.Name
		if name == "" {
			name = "stage-" + strconv.Itoa(i)
		}
		b.stages = append(b.stages, &stageRun{b: b, idx: i, st: st, name: name, done: make(chan struct{})})
	}
	b.target = len(b.stages) - 1
	if o.Target != "" {
		i, ok := instructions.HasStage(df.stages, o.Target)
		if !ok {
			var names []string
			for _, s := range df.stages {
				if s.Name != "" {
					names = append(names, s.Name)
				}
			}
			return nil, fmt.Errorf("--target %s: no such stage in %s (stages: %s)", o.Target, df.name, strings.Join(names, ", "))
		}
		b.target = i
	}
	return b, nil
}

// platformArgs are the predefined TARGET*/BUILD* ARGs.
func (b *builder) platformArgs() map[string]string {
	h := hostPlatform()
	return map[string]string{
		"TARGETPLATFORM": platformString(b.platform),
		"TARGETOS":       b.platform.OS,
		"TARGETARCH":     b.platform.Architecture,
		"TARGETVARIANT":  b.platform.Variant,
		"BUILDPLATFORM":  platformString(h),
		"BUILDOS":        h.OS,
		"BUILDARCH":      h.Architecture,
		"BUILDVARIANT":   h.Variant,
	}
}

// stageByName finds an earlier stage named (or numbered) ref.
func (b *builder) stageByName(ref string, before int) *stageRun {
	if ref == "" {
		return nil // an unnamed stage is not named ""
	}
	if i, err := strconv.Atoi(ref); err == nil {
		if i >= 0 && i < before {
			return b.stages[i]
		}
		return nil
	}
	for i := 0; i < before; i++ {
		if strings.EqualFold(b.stages[i].st.Name, ref) {
			return b.stages[i]
		}
	}
	return nil
}

// deps lists the stages stage i reads (FROM, COPY --from, RUN --mount from).
func (b *builder) deps(i int) []*stageRun {
	st := b.stages[i].st
	var out []*stageRun
	add := func(ref string) {
		if ref == "" {
			return
		}
		ref, _ = newLex(b.df.escape).expand(ref, mapEnv(b.metaEnv))
		if s := b.stageByName(ref, i); s != nil {
			out = append(out, s)
		}
	}
	add(st.BaseName)
	for _, c := range st.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			add(c.From)
		case *instructions.RunCommand:
			for _, m := range instructions.GetMounts(c) {
				add(m.From)
			}
		}
	}
	return out
}

// needed lists, in order, the stages the target depends on.
func (b *builder) needed() []*stageRun {
	seen := map[int]bool{}
	var walk func(i int)
	walk = func(i int) {
		if seen[i] {
			return
		}
		seen[i] = true
		for _, d := range b.deps(i) {
			walk(d.idx)
		}
	}
	walk(b.target)
	var out []*stageRun
	for i := range b.stages {
		if seen[i] {
			out = append(out, b.stages[i])
		}
	}
	return out
}

// run builds every needed stage, independent ones at once, and returns
// the target's image.
func (b *builder) run() (v1.Image, error) {
	need := b.needed()
	for _, s := range need {
		s.start()
	}
	t := b.stages[b.target]
	img, err := t.wait()
	if err != nil {
		// Report the first stage that really failed, not its dependents.
		for _, s := range need {
			if _, e := s.wait(); e != nil && !errors.Is(e, errDepFailed) {
				return nil, e
			}
		}
		return nil, err
	}
	return img, nil
}

func (b *builder) warnUnusedArgs() {
	var unused []string
	for k := range b.o.BuildArgs {
		if _, ok := b.usedArgs.Load(k); !ok {
			if _, pre := b.platformArgs()[k]; !pre {
				unused = append(unused, k)
			}
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		b.pr.warn("build-args not consumed by any ARG: " + strings.Join(unused, ", "))
	}
}

var errDepFailed = errors.New("a stage it depends on failed")

// makeTime is the timestamp for things made now: --timestamp when set.
func (b *builder) now() time.Time {
	if b.o.Timestamp != nil {
		return b.o.Timestamp.UTC()
	}
	return time.Now().UTC().Truncate(time.Second)
}
