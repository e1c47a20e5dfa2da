package image

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// ApplyChanges applies Dockerfile instructions (docker import --change:
// CMD ENTRYPOINT ENV WORKDIR USER EXPOSE LABEL VOLUME STOPSIGNAL) to cfg.
func ApplyChanges(cfg *v1.Config, lines []string) error {
	for _, line := range lines {
		if err := applyChange(cfg, line); err != nil {
			return fmt.Errorf("--change %q: %v", line, err)
		}
	}
	return nil
}

func applyChange(cfg *v1.Config, line string) error {
	res, err := parser.Parse(strings.NewReader(line))
	if err != nil {
		return err
	}
	if len(res.AST.Children) != 1 {
		return fmt.Errorf("want exactly one instruction")
	}
	inst, err := instructions.ParseInstruction(res.AST.Children[0])
	if err != nil {
		return err
	}
	// Quotes and $VARs (from the ENV set so far) resolve as in a Dockerfile.
	if e, ok := inst.(instructions.SupportsSingleWordExpansion); ok {
		lex := shell.NewLex(res.EscapeToken)
		env := envGetter(cfg.Env)
		if err := e.Expand(func(w string) (string, error) {
			out, _, err := lex.ProcessWord(w, env)
			return out, err
		}); err != nil {
			return err
		}
	}
	shell := func(c instructions.ShellDependantCmdLine) []string {
		if c.PrependShell {
			return []string{"/bin/sh", "-c", strings.Join(c.CmdLine, " ")}
		}
		return c.CmdLine
	}
	switch c := inst.(type) {
	case *instructions.CmdCommand:
		if len(c.CmdLine) == 0 {
			return fmt.Errorf("CMD needs a command")
		}
		cfg.Cmd = shell(c.ShellDependantCmdLine)
	case *instructions.EntrypointCommand:
		if len(c.CmdLine) == 0 {
			return fmt.Errorf("ENTRYPOINT needs a command")
		}
		cfg.Entrypoint = shell(c.ShellDependantCmdLine)
		// As docker: a new ENTRYPOINT resets an inherited CMD; here the
		// base has none, so nothing to do.
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			cfg.Env = setEnv(cfg.Env, kv.Key, kv.Value)
		}
	case *instructions.WorkdirCommand:
		cfg.WorkingDir = c.Path
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.ExposeCommand:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range c.Ports {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[p] = struct{}{}
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
	default:
		return fmt.Errorf("instruction not allowed here (want CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME or STOPSIGNAL)")
	}
	return nil
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if strings.HasPrefix(e, k+"=") {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// envGetter exposes KEY=VALUE pairs to the Dockerfile word expander.
type envGetter []string

func (e envGetter) Get(k string) (string, bool) {
	for _, kv := range e {
		if key, v, ok := strings.Cut(kv, "="); ok && key == k {
			return v, true
		}
	}
	return "", false
}

func (e envGetter) Keys() []string {
	var out []string
	for _, kv := range e {
		k, _, _ := strings.Cut(kv, "=")
		out = append(out, k)
	}
	return out
}
