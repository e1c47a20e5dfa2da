// Package engine makes containers from images: it keeps each container's
// record, rootfs (overlayfs over the store's snapshots), logs and volumes
// under the store root, generates its OCI spec with docker's defaults and
// drives berth's runtime to run it, supervised by a per-container monitor.
package engine

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/internal/flock"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berthproject/berth/runtime"
	"github.com/berthproject/berth/store"
)

// Engine manages the containers and volumes of one store root.
type Engine struct {
	Root    string // the store root: containers/ and volumes/ live here
	Store   *store.Store
	Runtime *runtime.Runtime
}

// Open returns the engine for the store at root, creating its directories.
func Open(root string) (*Engine, error) {
	st, err := store.Open(root)
	if err != nil {
		return nil, err
	}
	e := &Engine{Root: root, Store: st, Runtime: runtime.New(runtimeRoot(root))}
	for _, d := range []string{e.containersDir(), e.volumesDir()} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// runtimeRoot is where the runtime keeps this store's container state: the
// default for the default store, else a directory named after the store so
// that test stores do not mix with the host's.
func runtimeRoot(root string) string {
	abs, _ := filepath.Abs(root)
	if abs == "/var/lib/berth" {
		return runtime.DefaultRoot
	}
	h := fnv64(abs)
	return fmt.Sprintf("/run/berth/runtime-%016x", h)
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func (e *Engine) containersDir() string       { return filepath.Join(e.Root, "containers") }
func (e *Engine) volumesDir() string          { return filepath.Join(e.Root, "volumes") }
func (e *Engine) dir(id string) string        { return filepath.Join(e.containersDir(), id) }
func (e *Engine) recordPath(id string) string { return filepath.Join(e.dir(id), "container.json") }

// Container status values, as docker names them.
const (
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusPaused     = "paused"
	StatusExited     = "exited"
	StatusRemoving   = "removing"
	StatusRestarting = "restarting"
)

// State is a container's run state, kept in its record.
type State struct {
	Status     string
	Running    bool
	Paused     bool
	Pid        int
	PidStart   uint64 `json:",omitempty"` // the init's start time, against pid reuse
	ExitCode   int
	OOMKilled  bool
	Restarting bool    // exited, and its supervisor starts it again (--restart)
	Health     *Health `json:",omitempty"`
	// StopRequested: stop, kill or rm asked for the exit, which --restart
	// then leaves alone, as docker does.
	StopRequested bool      `json:",omitempty"`
	Error         string    `json:",omitempty"`
	StartedAt     time.Time `json:",omitempty"`
	FinishedAt    time.Time `json:",omitempty"`
	// The monitor (or foreground berth) that supervises the container;
	// its start time guards against pid reuse after it dies.
	MonitorPid   int    `json:",omitempty"`
	MonitorStart uint64 `json:",omitempty"`
}

// Container is the record kept at containers/<id>/container.json.
type Container struct {
	ID      string
	Name    string
	Created time.Time
	Image   string // the reference the user gave
	// ImageDigest is the manifest digest of the image: the store's rmi
	// scans containers/*/container.json for it to know images in use.
	ImageDigest  string
	ImageID      string // config digest, docker's image ID
	Platform     string // os/arch[/variant] of the image
	ImageConfig  *v1.ConfigFile
	Lowers       []string // the image's snapshot dirs, lowest first
	Opts         Options
	MountPoints  []MountPoint
	State        State
	RestartCount int
}

// ID/name helpers.

var nameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	adjectives = []string{"brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quiet", "stoic", "tender", "vivid", "wise", "zen", "bold", "crisp", "jolly"}
	nouns      = []string{"albatross", "beacon", "bollard", "buoy", "capstan", "dinghy", "galley", "harbor", "keel", "lighthouse", "mooring", "quay", "rudder", "schooner", "tugboat", "wharf"}
)

func randomName() string {
	b := make([]byte, 3)
	rand.Read(b)
	return fmt.Sprintf("%s_%s%d", adjectives[int(b[0])%len(adjectives)], nouns[int(b[1])%len(nouns)], int(b[2])%100)
}

// lockFile takes an exclusive lock on path: names and state changes are
// serialized across berth processes this way.
func lockFile(path string) (func(), error) { return flock.Lock(path, true) }

func (e *Engine) lockNames() (func(), error) {
	return lockFile(filepath.Join(e.containersDir(), ".names.lock"))
}

func (e *Engine) lock(id string) (func(), error) {
	if _, err := os.Stat(e.dir(id)); err != nil {
		return nil, fmt.Errorf("no such container: %s", id)
	}
	return lockFile(filepath.Join(e.dir(id), "lock"))
}

// save writes the record atomically (temp file + rename).
// modify runs f on container id's record under its lock, and saves the
// record if f says it changed it; it reports whether it saved (false also
// when the container is gone or the save failed).
func (e *Engine) modify(id string, f func(c *Container) bool) bool {
	unlock, err := e.lock(id)
	if err != nil {
		return false
	}
	defer unlock()
	c, err := e.loadID(id)
	if err != nil || !f(c) {
		return false
	}
	return e.save(c) == nil
}

func (e *Engine) save(c *Container) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := e.recordPath(c.ID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, e.recordPath(c.ID))
}

// isID reports whether s is a container ID (64 lowercase hex digits).
func isID(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// loadID reads the record of container id. The ID becomes a path under
// containers/: anything but hex (say "../../tmp/x" padded to 64 bytes on
// a command line) would read a forged record from elsewhere, whose own ID
// then steers rm's rename and RemoveAll; so both are held to the format.
func (e *Engine) loadID(id string) (*Container, error) {
	if !isID(id) {
		return nil, fmt.Errorf("no such container: %s", id)
	}
	b, err := os.ReadFile(e.recordPath(id))
	if err != nil {
		return nil, err
	}
	c := &Container{}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("container %s: corrupt record: %w", id, err)
	}
	if c.ID != id {
		return nil, fmt.Errorf("container %s: corrupt record: it names ID %q", id, c.ID)
	}
	return c, nil
}

// List returns every container, newest first, with its state refreshed.
func (e *Engine) List() ([]*Container, error) {
	out, err := e.listRecords()
	for _, c := range out {
		e.refresh(c)
	}
	return out, err
}

// listRecords reads every record as it is on disk, taking no lock (for
// callers that hold other locks).
func (e *Engine) listRecords() ([]*Container, error) {
	ents, err := os.ReadDir(e.containersDir())
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, ent := range ents {
		if !ent.IsDir() || len(ent.Name()) != 64 {
			continue
		}
		c, err := e.loadID(ent.Name())
		if err != nil {
			continue // half-created or being removed
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Lookup finds a container by full ID, name, or unique ID prefix.
func (e *Engine) Lookup(ref string) (*Container, error) {
	ref = strings.TrimPrefix(ref, "/")
	if ref == "" {
		return nil, errors.New("empty container name or ID")
	}
	if isID(ref) {
		if c, err := e.loadID(ref); err == nil {
			e.refresh(c)
			return c, nil
		}
	}
	all, err := e.List()
	if err != nil {
		return nil, err
	}
	for _, c := range all {
		if c.Name == ref {
			return c, nil
		}
	}
	var match *Container
	for _, c := range all {
		if strings.HasPrefix(c.ID, ref) {
			if match != nil {
				return nil, fmt.Errorf("container ID prefix %q is ambiguous", ref)
			}
			match = c
		}
	}
	if match == nil {
		return nil, fmt.Errorf("no such container: %s", ref)
	}
	return match, nil
}

// procStart returns the start time of pid (field 22 of /proc/pid/stat), 0
// if it does not exist or has exited.
func procStart(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0 // a zombie is dead, whether or not its parent reaped it
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// monitorAlive reports whether the container's supervisor still runs.
func (c *Container) monitorAlive() bool {
	return c.State.MonitorPid > 0 && procStart(c.State.MonitorPid) == c.State.MonitorStart
}

// initAlive reports whether the container's init still runs, whoever
// supervises it.
func (c *Container) initAlive() bool {
	return c.State.PidStart != 0 && procStart(c.State.Pid) == c.State.PidStart
}

// orphanNote is the record's Error for a container whose supervisor died
// while it runs on: nobody will be told its exit status.
const orphanNote = "its monitor died; its exit status will not be known"

// refresh fixes up a record whose supervisor died (kill -9 of a
// foreground berth run or of a monitor): a container whose init still runs
// stays running, as the process it is; one whose init is gone too is shown
// as exited (255, the status being lost; with --rm too, for `rm` or
// `container prune` to take, since a lookup must not remove what it finds).
// The record on disk is updated under the container's lock.
func (e *Engine) refresh(c *Container) {
	if !c.State.Running || c.monitorAlive() || c.initAlive() && c.State.Error == orphanNote {
		return
	}
	unlock, err := e.lock(c.ID)
	if err != nil {
		return
	}
	cur, err := e.loadID(c.ID)
	if err != nil {
		unlock()
		return
	}
	switch {
	case !cur.State.Running || cur.monitorAlive():
	case cur.initAlive():
		cur.State.Error = orphanNote
		e.save(cur)
	default:
		cur.State.Running = false
		cur.State.Paused = false
		cur.State.Status = StatusExited
		if cur.State.ExitCode == 0 {
			cur.State.ExitCode = 255
		}
		cur.State.Error = "its monitor died; its exit status was lost"
		cur.State.FinishedAt = time.Now().UTC()
		e.save(cur)
	}
	unlock()
	*c = *cur
}

// ShortID is docker's 12-character ID.
func (c *Container) ShortID() string { return c.ID[:12] }

// Command is the container's command as docker's ps shows it.
func (c *Container) Command() []string {
	return processArgs(imageConfig(c.ImageConfig), &c.Opts)
}

// StatusText is docker's STATUS column: "Up 3 minutes", "Exited (0) 2
// seconds ago", "Created".
func (c *Container) StatusText() string {
	switch {
	case c.State.Running && c.State.Paused:
		return "Up " + HumanDuration(time.Since(c.State.StartedAt)) + " (Paused)"
	case c.State.Running && c.State.Health != nil && c.State.Health.Status == HealthStarting:
		return "Up " + HumanDuration(time.Since(c.State.StartedAt)) + " (health: starting)"
	case c.State.Running && c.State.Health != nil:
		return "Up " + HumanDuration(time.Since(c.State.StartedAt)) + " (" + c.State.Health.Status + ")"
	case c.State.Running:
		return "Up " + HumanDuration(time.Since(c.State.StartedAt))
	case c.State.Status == StatusExited:
		return fmt.Sprintf("Exited (%d) %s ago", c.State.ExitCode, HumanDuration(time.Since(c.State.FinishedAt)))
	case c.State.Status == StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", c.State.ExitCode, HumanDuration(time.Since(c.State.FinishedAt)))
	}
	return "Created"
}

// HumanDuration is d as docker shows ages and uptimes ("About an hour",
// "3 days", "2 weeks").
func HumanDuration(d time.Duration) string {
	s := int(d.Seconds())
	h := s / 3600
	switch {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	case s < 120:
		return "About a minute"
	case s < 3600:
		return fmt.Sprintf("%d minutes", s/60)
	case s < 7200:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	case h < 24*7*2:
		return fmt.Sprintf("%d days", h/24)
	case h < 24*30*2:
		return fmt.Sprintf("%d weeks", h/24/7)
	case h < 24*365*2:
		return fmt.Sprintf("%d months", h/24/30)
	}
	return fmt.Sprintf("%d years", h/24/365)
}
