package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/network"
)

// validate checks the options that need no image, so that bad input
// fails before anything is written.
func validate(o *Options) error {
	if o.Name != "" && !nameRe.MatchString(o.Name) {
		return fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", o.Name)
	}
	if _, err := capabilities(defaultCaps, o.CapAdd, o.CapDrop); err != nil {
		return err
	}
	if _, err := rlimits(o.Ulimits); err != nil {
		return err
	}
	for _, ef := range o.EnvFiles {
		if _, err := readEnvFile(ef); err != nil {
			return err
		}
	}
	if o.StopSignal != "" {
		if _, err := ParseSignal(o.StopSignal); err != nil {
			return err
		}
	}
	if err := checkEtcValues(o.Hostname, o.AddHosts); err != nil {
		return err
	}
	for _, kv := range o.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "" || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("invalid environment variable %q: want NAME=VALUE or NAME", kv)
		}
	}
	if o.OOMScoreAdj < -1000 || o.OOMScoreAdj > 1000 {
		return fmt.Errorf("--oom-score-adj %d: must be -1000 to 1000", o.OOMScoreAdj)
	}
	if o.IP != "" || o.MACAddress != "" {
		if kind, name := networkMode(o.Network); kind != netBridge || name == network.DefaultName || name == "bridge" {
			return fmt.Errorf("--ip and --mac-address need a user-defined network (--network NAME), not %q", o.Network)
		}
	}
	if err := checkNSModes(o); err != nil {
		return err
	}
	if _, err := sysctls(o.Sysctls); err != nil {
		return err
	}
	if _, err := parseSize(o.ShmSize); err != nil {
		return fmt.Errorf("--shm-size: %w", err)
	}
	if _, _, err := devices(o.Devices); err != nil {
		return err
	}
	switch o.LogDriver {
	case "", "json-file", "none":
	default:
		return fmt.Errorf("--log-driver %q: berth writes json-file logs, or none", o.LogDriver)
	}
	for _, p := range o.Expose {
		if _, err := network.ExposedPorts(exposeSet([]string{p})); err != nil {
			return fmt.Errorf("invalid --expose %q: want PORT[/PROTO] with a port of 1-65535", p)
		}
	}
	if _, err := healthcheck(&Container{Opts: *o}); err != nil {
		return err
	}
	if policy, _, err := restartPolicy(o.Restart); err != nil {
		return err
	} else if o.AutoRemove && policy != "" && policy != "no" {
		return fmt.Errorf("conflicting options: --restart %s and --rm", o.Restart)
	}
	if o.LogMaxSize != "" {
		if _, err := parseSize(o.LogMaxSize); err != nil {
			return fmt.Errorf("--log-opt max-size: %w", err)
		}
	}
	return resources(&specs.LinuxResources{}, o)
}

// Create makes a container from an image: its record, its overlay dirs and
// its volumes. It does not start it.
func (e *Engine) Create(o Options) (*Container, error) {
	if err := validate(&o); err != nil {
		return nil, err
	}
	if err := e.validateNetwork(o.Network, o.Publish, o.PublishAll, o.NetAliases); err != nil {
		return nil, err
	}
	img, err := e.Store.Image(o.Image, o.Platform)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", o.Image, err)
	}
	platform := imagePlatform(cf)
	if err := checkPlatform(platform); err != nil {
		return nil, err
	}
	mdig, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", o.Image, err)
	}
	cdig, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", o.Image, err)
	}
	lowers, err := e.Store.Snapshots(img)
	if err != nil {
		return nil, fmt.Errorf("image %s: unpacking layers: %w", o.Image, err)
	}
	if len(lowers) == 0 {
		return nil, fmt.Errorf("image %s has no layers to run", o.Image)
	}
	if len(processArgs(&cf.Config, &o)) == 0 {
		return nil, errors.New("no command specified: the image has no Entrypoint or Cmd, give one after the image name")
	}

	c := &Container{
		ID: newID(), Created: time.Now().UTC(), Image: o.Image,
		ImageDigest: mdig.String(), ImageID: cdig.String(), Platform: platform,
		ImageConfig: cf, Lowers: lowers, Opts: o,
		State: State{Status: StatusCreated},
	}
	mps, err := e.parseMounts(&c.Opts, cf.Config.Volumes)
	if err != nil {
		return nil, err
	}
	c.MountPoints = mps

	unlock, err := e.lockNames()
	if err != nil {
		return nil, err
	}
	defer unlock()
	c.Name = o.Name
	if c.Name == "" {
		for {
			c.Name = randomName()
			if !e.nameTaken(c.Name) {
				break
			}
		}
	} else if e.nameTaken(c.Name) {
		return nil, fmt.Errorf("the container name %q is already in use: remove or rename that container first", c.Name)
	}
	d := e.dir(c.ID)
	for _, sub := range []string{"upper", "work", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o700); err != nil {
			os.RemoveAll(d)
			return nil, err
		}
	}
	if err := makeInitLayer(e.initLayerDir(c.ID), c.Lowers, mountStubs(c.MountPoints)); err != nil {
		os.RemoveAll(d)
		return nil, err
	}
	// The merged root takes the upper dir's mode: it must be traversable
	// by non-root container users.
	os.Chmod(filepath.Join(d, "rootfs"), 0o755)
	os.Chmod(filepath.Join(d, "upper"), 0o755)
	os.Chmod(d, 0o711)
	if err := e.save(c); err != nil {
		os.RemoveAll(d)
		return nil, err
	}
	// The store's rmi/prune scan containers/<id>/berth.json for the
	// images in use; the record itself stays container.json.
	ref, _ := json.Marshal(map[string]string{"ImageDigest": c.ImageDigest, "ImageID": c.ImageID})
	if err := os.WriteFile(filepath.Join(d, "berth.json"), ref, 0o600); err != nil {
		os.RemoveAll(d)
		return nil, err
	}
	return c, nil
}

// nameTaken scans records for name; callers hold the names lock.
func (e *Engine) nameTaken(name string) bool {
	ents, _ := os.ReadDir(e.containersDir())
	for _, ent := range ents {
		if !ent.IsDir() {
			continue
		}
		if c, err := e.loadID(ent.Name()); err == nil && c.Name == name {
			return true
		}
	}
	return false
}

func imagePlatform(cf *v1.ConfigFile) string {
	p := cf.OS
	if p == "" {
		p = "linux"
	}
	if cf.Architecture != "" {
		p += "/" + cf.Architecture
		if cf.Variant != "" {
			p += "/" + cf.Variant
		}
	}
	return p
}

// Rename gives a container a new, unused name.
func (e *Engine) Rename(ref, name string) error {
	if !nameRe.MatchString(name) {
		return fmt.Errorf("invalid container name %q", name)
	}
	c, err := e.Lookup(ref)
	if err != nil {
		return err
	}
	unlock, err := e.lockNames()
	if err != nil {
		return err
	}
	defer unlock()
	if e.nameTaken(name) {
		return fmt.Errorf("the container name %q is already in use", name)
	}
	ul, err := e.lock(c.ID)
	if err != nil {
		return err
	}
	defer ul()
	cur, err := e.loadID(c.ID)
	if err != nil {
		return err
	}
	cur.Name = name
	return e.save(cur)
}
