package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// AuthFile is berth's credential file, in docker's config.json format:
// $BERTH_AUTH_FILE, else $XDG_CONFIG_HOME/berth/auth.json, else
// ~/.config/berth/auth.json.
func AuthFile() string {
	if p := os.Getenv("BERTH_AUTH_FILE"); p != "" {
		return p
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "berth", "auth.json")
}

type authConfig struct {
	Auths map[string]struct {
		Auth string `json:"auth"`
	} `json:"auths"`
}

func readAuth(path string) (*authConfig, error) {
	c := &authConfig{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return c, nil
}

func writeAuth(path string, c *authConfig) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(c, "", "\t")
	if err != nil {
		return err
	}
	// A fresh file of our own (O_EXCL, random name): writing to a fixed
	// auth.json.tmp followed a symlink or kept the mode of whatever file
	// was already there, so credentials could land somewhere readable.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// authKey is how a registry is keyed in auth files (docker's hub key).
func authKey(reg string) string {
	if reg == name.DefaultRegistry || reg == "docker.io" {
		return "https://index.docker.io/v1/"
	}
	return reg
}

// fileKeychain resolves credentials from berth's auth file.
type fileKeychain struct{ path string }

func (k fileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	c, err := readAuth(k.path)
	if err != nil {
		return nil, err
	}
	for _, key := range []string{authKey(r.RegistryStr()), r.RegistryStr()} {
		if a, ok := c.Auths[key]; ok && a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("%s: bad auth for %s", k.path, key)
			}
			user, pass, _ := strings.Cut(string(raw), ":")
			return &authn.Basic{Username: user, Password: pass}, nil
		}
	}
	return authn.Anonymous, nil
}

// Keychain is berth's auth file first, then docker's (~/.docker/config.json
// and credential helpers).
func Keychain(authFile string) authn.Keychain {
	if authFile == "" {
		authFile = AuthFile()
	}
	return authn.NewMultiKeychain(fileKeychain{authFile}, authn.DefaultKeychain)
}

// Login checks user/password against the registry and, when they work,
// saves them in the auth file.
func Login(ctx context.Context, registry, user, password string, o Options) error {
	return printable(login(ctx, registry, user, password, o))
}

func login(ctx context.Context, registry, user, password string, o Options) error {
	reg, err := name.NewRegistry(strings.TrimPrefix(strings.TrimPrefix(registry, "https://"), "http://"), o.nameOpts()...)
	if err != nil {
		return fmt.Errorf("invalid registry %q: %v", registry, err)
	}
	if user == "" || password == "" {
		return errors.New("login: username and password required")
	}
	rt := o.remoteTransport()
	auth := &authn.Basic{Username: user, Password: password}
	t, err := transport.NewWithContext(ctx, reg, auth, rt, []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return loginError(registry, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: t}).Do(req)
	if err != nil {
		return loginError(registry, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("login %s: wrong username or password", registry)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login %s: registry answered %s", registry, resp.Status)
	}
	path := o.AuthFile
	if path == "" {
		path = AuthFile()
	}
	c, err := readAuth(path)
	if err != nil {
		return err
	}
	if c.Auths == nil {
		c.Auths = map[string]struct {
			Auth string `json:"auth"`
		}{}
	}
	e := c.Auths[authKey(reg.RegistryStr())]
	e.Auth = base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	c.Auths[authKey(reg.RegistryStr())] = e
	return writeAuth(path, c)
}

func loginError(registry string, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("login %s: wrong username or password", registry)
	}
	return fmt.Errorf("login %s: %s", registry, flat(err))
}

// Logout forgets the registry's credentials in the auth file.
func Logout(registry string, o Options) error {
	reg, err := name.NewRegistry(registry, o.nameOpts()...)
	if err != nil {
		return fmt.Errorf("invalid registry %q: %v", registry, err)
	}
	path := o.AuthFile
	if path == "" {
		path = AuthFile()
	}
	c, err := readAuth(path)
	if err != nil {
		return err
	}
	key := authKey(reg.RegistryStr())
	if _, ok := c.Auths[key]; !ok {
		return fmt.Errorf("not logged in to %s", registry)
	}
	delete(c.Auths, key)
	return writeAuth(path, c)
}
