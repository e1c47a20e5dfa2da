package build

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// stageRun is one stage of one platform's build; it runs at most once and
// its dependents wait on done.
type stageRun struct {
	b    *builder
	idx  int
	st   *instructions.Stage
	name string
	once sync.Once
	done chan struct{}

	img     v1.Image
	view    *fsView // the final filesystem, when the build already has it
	key     string
	created time.Time
	err     error
}

func (s *stageRun) start() {
	s.once.Do(func() {
		go func() {
			defer close(s.done)
			s.img, s.err = s.build()
		}()
	})
}

func (s *stageRun) wait() (v1.Image, error) {
	s.start()
	<-s.done
	return s.img, s.err
}

// state is a stage being built: its image so far and what later
// instructions see (config, ARGs, cache chain).
type state struct {
	s        *stageRun
	platform v1.Platform
	base     v1.Image // nil: scratch
	layers   []v1.Layer
	cfg      *v1.ConfigFile
	key      string
	created  time.Time
	args     map[string]string
	step     int
	total    int
	cmdSet   bool
	view     *fsView
	// pendingView, set by a RUN that ran, is the view after its layer.
	pendingView *fsView
}

type lexer struct{ l *shell.Lex }

func newLex(esc rune) *lexer { return &lexer{shell.NewLex(esc)} }

func (l *lexer) expand(w string, env shell.EnvGetter) (string, error) {
	r, _, err := l.l.ProcessWord(w, env)
	return r, err
}

type mapEnv map[string]string

func (m mapEnv) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }
func (m mapEnv) Keys() []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// env is what ${VAR} sees in the stage: declared ARGs, overridden by ENV.
func (st *state) env() mapEnv {
	m := mapEnv{}
	for k, v := range st.args {
		m[k] = v
	}
	for _, kv := range st.cfg.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// runEnv is the environment of a RUN: the image's ENV plus the ARGs it
// does not override (ARGs are not kept in the image).
func (st *state) runEnv() []string {
	env := append([]string(nil), st.cfg.Config.Env...)
	have := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		have[k] = true
	}
	var ks []string
	for k := range st.args {
		if !have[k] {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	for _, k := range ks {
		env = append(env, k+"="+st.args[k])
	}
	if !have["PATH"] {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return env
}

func (st *state) prefix() string {
	p := fmt.Sprintf("[%s %d/%d]", st.s.name, st.step, st.total)
	if st.s.b.multi {
		p = "[" + platformString(st.platform) + "] " + p
	}
	return p
}

// image is the stage's image so far.
func (st *state) image() (v1.Image, error) {
	img := st.base
	if img == nil {
		img = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	var err error
	if len(st.layers) > 0 {
		adds := make([]mutate.Addendum, len(st.layers))
		for i, l := range st.layers {
			adds[i] = mutate.Addendum{Layer: l, MediaType: layerMediaType}
		}
		if img, err = mutate.Append(img, adds...); err != nil {
			return nil, err
		}
	}
	cf := st.cfg.DeepCopy()
	return mutate.ConfigFile(img, cf)
}

// lowerView is the stage's filesystem so far, read from the store's
// snapshots of its layers.
func (st *state) lowerView() (*fsView, error) {
	if st.view != nil {
		return st.view, nil
	}
	img, err := st.image()
	if err != nil {
		return nil, err
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	v := &fsView{}
	if len(ls) > 0 {
		dirs, err := st.s.b.o.Store.Snapshots(img)
		if err != nil {
			return nil, fmt.Errorf("unpack layers: %w", err)
		}
		v.layers = dirs
	}
	st.view = v
	return v, nil
}

func (st *state) addLayer(l *fileLayer) {
	st.layers = append(st.layers, l)
	st.cfg.RootFS.DiffIDs = append(st.cfg.RootFS.DiffIDs, l.hash)
	st.view, st.pendingView = st.pendingView, nil
}

// stepOpts describe how an instruction runs as a cacheable step.
type stepOpts struct {
	text   string   // shown and recorded in history
	key    []string // what besides the parent decides the result
	link   bool     // COPY --link: the layer does not depend on the parent
	stream bool     // prints output while running: announce the step first
	make   func() (*fileLayer, error)
}

// runStep runs or reuses one step and records it in history.
func (st *state) runStep(line int, o stepOpts) error {
	b := st.s.b
	st.step++
	prefix := st.prefix()
	lookup := stepKey(st.key, o.key...)
	chain := lookup
	if o.link {
		lookup = stepKey("link", o.key...)
		chain = stepKey(st.key, lookup)
	}
	var layer *fileLayer
	created := b.now()
	st.pendingView = nil
	if e, l, ok := b.cache.get(lookup); ok && !b.o.NoCache {
		layer = l
		created = e.Created
		b.pr.cached(prefix, o.text)
	} else {
		t0 := time.Now()
		if o.stream {
			b.pr.begin(prefix, o.text)
		}
		var err error
		if o.make != nil {
			layer, err = o.make()
		}
		if err != nil {
			var se *StepError
			if errors.As(err, &se) {
				if se.File == "" {
					se.File, se.Line, se.Instruction = b.df.name, line, o.text
				}
				return err
			}
			return stepErr(b.df.name, line, o.text, err)
		}
		e := &cacheEntry{Created: created}
		if layer != nil {
			e.Layer = &layer.hash
		}
		if err := b.cache.put(lookup, e); err != nil {
			return stepErr(b.df.name, line, o.text, fmt.Errorf("record in build cache: %w", err))
		}
		b.pr.done(prefix, o.text, time.Since(t0), o.stream)
	}
	if b.o.Timestamp != nil {
		created = b.o.Timestamp.UTC()
	}
	st.key = chain
	st.created = created
	if layer != nil {
		st.addLayer(layer)
	}
	st.cfg.History = append(st.cfg.History, v1.History{
		Created:    v1.Time{Time: created},
		CreatedBy:  o.text,
		Comment:    "berth build",
		EmptyLayer: layer == nil,
	})
	return nil
}

// build runs the stage: FROM, its base's ONBUILD triggers, then its
// instructions.
func (s *stageRun) build() (v1.Image, error) {
	b := s.b
	st := &state{s: s, platform: b.platform, args: map[string]string{}}
	lex := newLex(b.df.escape)
	fromLine := lineOf(s.st.Location)
	fail := func(text string, err error) error {
		return stepErr(b.df.name, fromLine, text, err)
	}
	baseName, err := lex.expand(s.st.BaseName, mapEnv(b.metaEnv))
	if err != nil {
		return nil, fail(s.st.SourceCode, err)
	}
	if baseName == "" {
		return nil, fail(s.st.SourceCode, fmt.Errorf("base name (%s) should not be blank (an ARG used in FROM must be declared before the first FROM)", s.st.BaseName))
	}
	if s.st.Platform != "" {
		ps, err := lex.expand(s.st.Platform, mapEnv(b.metaEnv))
		if err != nil {
			return nil, fail(s.st.SourceCode, err)
		}
		p, err := v1.ParsePlatform(ps)
		if err != nil {
			return nil, fail(s.st.SourceCode, fmt.Errorf("--platform %q: %w", ps, err))
		}
		st.platform = *p
	}
	var triggers []instructions.Command
	switch dep := b.stageByName(baseName, s.idx); {
	case strings.EqualFold(baseName, "scratch"):
		st.cfg = &v1.ConfigFile{
			OS: st.platform.OS, Architecture: st.platform.Architecture, Variant: st.platform.Variant,
			RootFS: v1.RootFS{Type: "layers"},
		}
		st.key = stepKey("scratch", platformString(st.platform))
	case dep != nil:
		img, err := dep.wait()
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", s.name, errDepFailed)
		}
		st.base = img
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fail(s.st.SourceCode, err)
		}
		st.cfg = cf.DeepCopy()
		st.key = dep.key
		st.created = dep.created
	default:
		img, err := b.o.Store.Image(baseName, platformString(st.platform))
		if err != nil {
			return nil, fail(s.st.SourceCode, fmt.Errorf("base image %q for %s: %w", baseName, platformString(st.platform), err))
		}
		st.base = img
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fail(s.st.SourceCode, err)
		}
		st.cfg = cf.DeepCopy()
		d, err := img.Digest()
		if err != nil {
			return nil, fail(s.st.SourceCode, err)
		}
		st.key = stepKey("image", d.String(), platformString(st.platform))
		st.created = cf.Created.Time
	}
	if st.cfg.Config.Labels == nil {
		st.cfg.Config.Labels = nil
	}
	// As buildah and BuildKit do, an image without PATH gets the default.
	if !hasEnv(st.cfg.Config.Env, "PATH") && st.platform.OS != "windows" {
		st.cfg.Config.Env = append([]string{defaultPath}, st.cfg.Config.Env...)
	}
	for _, t := range st.cfg.Config.OnBuild {
		c, err := parseTrigger(t)
		if err != nil {
			return nil, fail("ONBUILD "+t, err)
		}
		triggers = append(triggers, c)
	}
	st.cfg.Config.OnBuild = nil
	cmds := append(triggers, s.st.Commands...)
	st.total = 1 + len(cmds)
	st.step = 1
	from := "FROM " + baseName
	if s.st.Platform != "" {
		from = "FROM --platform=" + platformString(st.platform) + " " + baseName
	}
	if s.st.Name != "" {
		from += " AS " + s.st.Name
	}
	b.pr.line(st.prefix(), from, "")
	for i, c := range cmds {
		line := lineOf(c.Location())
		if i < len(triggers) {
			line = fromLine
		}
		if err := st.exec(c, line); err != nil {
			return nil, err
		}
	}
	if s.idx == b.target && len(b.o.Labels) > 0 {
		if st.cfg.Config.Labels == nil {
			st.cfg.Config.Labels = map[string]string{}
		}
		for k, v := range b.o.Labels {
			st.cfg.Config.Labels[k] = v
		}
	}
	st.cfg.Created = v1.Time{Time: st.created}
	if b.o.Timestamp != nil {
		st.cfg.Created = v1.Time{Time: b.o.Timestamp.UTC()}
	}
	s.key = st.key
	s.created = st.created
	s.view = st.view
	return st.image()
}

// parseTrigger parses an ONBUILD trigger as one instruction.
func parseTrigger(expr string) (instructions.Command, error) {
	res, err := parser.Parse(strings.NewReader(expr))
	if err != nil {
		return nil, err
	}
	if len(res.AST.Children) != 1 {
		return nil, fmt.Errorf("ONBUILD trigger %q is not one instruction", expr)
	}
	return instructions.ParseCommand(res.AST.Children[0])
}

// exec runs one instruction.
func (st *state) exec(cmd instructions.Command, line int) error {
	b := st.s.b
	text := cmd.Name()
	if s, ok := cmd.(fmt.Stringer); ok {
		text = s.String()
	}
	lex := newLex(b.df.escape)
	env := st.env()
	expander := func(w string) (string, error) { return lex.expand(w, env) }
	if e, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		if err := e.Expand(expander); err != nil {
			st.step++
			return stepErr(b.df.name, line, text, err)
		}
	}
	if e, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
		raw := shell.NewLex(b.df.escape)
		raw.RawQuotes, raw.RawEscapes = true, true
		if err := e.ExpandRaw(func(w string) (string, error) {
			r, _, err := raw.ProcessWord(w, env)
			return r, err
		}); err != nil {
			st.step++
			return stepErr(b.df.name, line, text, err)
		}
	}
	meta := func(key ...string) error {
		return st.runStep(line, stepOpts{text: text, key: append([]string{text}, key...)})
	}
	c := &st.cfg.Config
	switch cmd := cmd.(type) {
	case *instructions.EnvCommand:
		var kvs []string
		for _, kv := range cmd.Env {
			c.Env = setEnv(c.Env, kv.Key, kv.Value)
			kvs = append(kvs, kv.Key+"="+kv.Value)
		}
		return meta(kvs...)
	case *instructions.LabelCommand:
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		var kvs []string
		for _, kv := range cmd.Labels {
			c.Labels[kv.Key] = kv.Value
			kvs = append(kvs, kv.Key+"="+kv.Value)
		}
		return meta(kvs...)
	case *instructions.MaintainerCommand:
		st.cfg.Author = cmd.Maintainer
		return meta()
	case *instructions.ArgCommand:
		var kvs []string
		for _, kv := range cmd.Args {
			v, ok := b.o.BuildArgs[kv.Key]
			if ok {
				b.usedArgs.Store(kv.Key, true)
			} else if kv.Value != nil {
				v, ok = *kv.Value, true
			} else if mv, found := b.metaEnv[kv.Key]; found {
				v, ok = mv, true
			}
			if ok {
				st.args[kv.Key] = v
				kvs = append(kvs, kv.Key+"="+v)
			} else {
				kvs = append(kvs, kv.Key)
			}
		}
		return meta(kvs...)
	case *instructions.UserCommand:
		c.User = cmd.User
		return meta(cmd.User)
	case *instructions.WorkdirCommand:
		p := cmd.Path
		if !path.IsAbs(p) {
			wd := c.WorkingDir
			if wd == "" {
				wd = "/"
			}
			p = path.Join(wd, p)
		}
		p = path.Clean(p)
		c.WorkingDir = p
		return st.runStep(line, stepOpts{text: text, key: []string{"WORKDIR", p}, make: func() (*fileLayer, error) {
			return st.mkdirLayer(p)
		}})
	case *instructions.CmdCommand:
		c.Cmd = st.cmdline(cmd.ShellDependantCmdLine)
		st.cmdSet = true
		return meta(c.Cmd...)
	case *instructions.EntrypointCommand:
		c.Entrypoint = st.cmdline(cmd.ShellDependantCmdLine)
		if !st.cmdSet {
			c.Cmd = nil // an inherited CMD was meant for the old entrypoint
		}
		return meta(c.Entrypoint...)
	case *instructions.ExposeCommand:
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		var ports []string
		for _, p := range cmd.Ports {
			ws, err := lex.l.ProcessWords(p, env)
			if err != nil {
				return stepErr(b.df.name, line, text, err)
			}
			for _, w := range ws {
				ps, err := exposedPorts(w)
				if err != nil {
					return stepErr(b.df.name, line, text, err)
				}
				for _, p := range ps {
					c.ExposedPorts[p] = struct{}{}
					ports = append(ports, p)
				}
			}
		}
		return meta(ports...)
	case *instructions.VolumeCommand:
		if c.Volumes == nil {
			c.Volumes = map[string]struct{}{}
		}
		for _, v := range cmd.Volumes {
			if v == "" {
				return stepErr(b.df.name, line, text, errors.New("VOLUME specified can not be an empty string"))
			}
			c.Volumes[v] = struct{}{}
		}
		return meta(cmd.Volumes...)
	case *instructions.StopSignalCommand:
		c.StopSignal = cmd.Signal
		return meta(cmd.Signal)
	case *instructions.HealthCheckCommand:
		h := cmd.Health
		c.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
		return meta(strings.Join(h.Test, "\x00"), h.Interval.String(), h.Timeout.String(), h.StartPeriod.String(), strconv.Itoa(h.Retries))
	case *instructions.ShellCommand:
		c.Shell = append([]string(nil), cmd.Shell...)
		return meta(cmd.Shell...)
	case *instructions.OnbuildCommand:
		c.OnBuild = append(c.OnBuild, cmd.Expression)
		return meta(cmd.Expression)
	case *instructions.CopyCommand:
		return st.copy(line, text, copySpec{
			SourcesAndDest: cmd.SourcesAndDest, from: cmd.From, chown: cmd.Chown, chmod: cmd.Chmod,
			link: cmd.Link, excludes: cmd.ExcludePatterns, parents: cmd.Parents,
		})
	case *instructions.AddCommand:
		unpack := true
		if cmd.Unpack != nil {
			unpack = *cmd.Unpack
		}
		return st.copy(line, text, copySpec{
			SourcesAndDest: cmd.SourcesAndDest, chown: cmd.Chown, chmod: cmd.Chmod,
			link: cmd.Link, excludes: cmd.ExcludePatterns, add: true, unpack: unpack, checksum: cmd.Checksum,
		})
	case *instructions.RunCommand:
		return st.run(line, text, cmd)
	}
	return stepErr(b.df.name, line, text, fmt.Errorf("instruction %T is not supported", cmd))
}

// cmdline turns CMD/ENTRYPOINT into argv: the shell form runs in SHELL.
func (st *state) cmdline(c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return append([]string(nil), c.CmdLine...)
	}
	return append(st.shell(), strings.Join(c.CmdLine, " "))
}

func (st *state) shell() []string {
	if len(st.cfg.Config.Shell) > 0 {
		return append([]string(nil), st.cfg.Config.Shell...)
	}
	return []string{"/bin/sh", "-c"}
}

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func hasEnv(env []string, k string) bool {
	for _, kv := range env {
		if ek, _, _ := strings.Cut(kv, "="); ek == k {
			return true
		}
	}
	return false
}

func setEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if ek, _, _ := strings.Cut(kv, "="); ek == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// exposedPorts normalizes "80", "80/udp", "8000-8002/tcp" to "N/proto".
func exposedPorts(s string) ([]string, error) {
	ports, proto, ok := strings.Cut(s, "/")
	if !ok {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("EXPOSE %s: invalid protocol %q", s, proto)
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	l, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("EXPOSE %s: invalid port", s)
	}
	h := l
	if isRange {
		if h, err = strconv.ParseUint(hi, 10, 16); err != nil || h < l {
			return nil, fmt.Errorf("EXPOSE %s: invalid port range", s)
		}
	}
	var out []string
	for p := l; p <= h; p++ {
		out = append(out, fmt.Sprintf("%d/%s", p, proto))
	}
	return out, nil
}
