package runtime

import "github.com/berthproject/berth/runtime/seccomp"

func init() { loadSeccomp = seccomp.Load }
