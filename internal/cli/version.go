package cli

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildVersion describes the running binary, read from the build info the Go
// toolchain embeds (runtime/debug.ReadBuildInfo).
type buildVersion struct {
	Module   string // main module path
	Version  string // main module version: a tag, a pseudo-version or "(devel)"
	Commit   string // vcs.revision; empty when not built from a VCS checkout
	Time     string // vcs.time
	Modified bool   // vcs.modified: the work tree had uncommitted changes
	Go       string // Go version that built the binary
	Platform string // GOOS/GOARCH
}

// readBuildVersion reads v from read (runtime/debug.ReadBuildInfo in
// production); a binary without build info gives "unknown" fields.
func readBuildVersion(read func() (*debug.BuildInfo, bool)) buildVersion {
	v := buildVersion{Module: "github.com/custody-dev/custody", Version: "unknown", Go: "unknown"}
	bi, ok := read()
	if !ok || bi == nil {
		return v
	}
	if bi.Main.Path != "" {
		v.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	var goos, goarch string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if goos != "" && goarch != "" {
		v.Platform = goos + "/" + goarch
	}
	return v
}

// write prints v, one field a line, the version first.
func (v buildVersion) write(w io.Writer) {
	fmt.Fprintf(w, "custody %s\n", v.Version)
	fmt.Fprintf(w, "module:  %s\n", v.Module)
	commit := v.Commit
	switch {
	case commit == "":
		commit = "unknown (not built from a git checkout)"
	case v.Modified:
		commit += " (dirty: uncommitted changes)"
	}
	fmt.Fprintf(w, "commit:  %s\n", commit)
	if v.Time != "" {
		fmt.Fprintf(w, "time:    %s\n", v.Time)
	}
	goLine := v.Go
	if v.Platform != "" {
		goLine += " " + v.Platform
	}
	fmt.Fprintf(w, "go:      %s\n", goLine)
}

func newVersionCmd(s *streams) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print custody's version, commit and Go version",
		Example: "  custody version\n  custody --version",
		Args:    argsBetween(0, 0),
		RunE: func(c *cobra.Command, args []string) error {
			readBuildVersion(debug.ReadBuildInfo).write(s.out)
			return nil
		},
	}
}

// setVersion makes "custody --version" print what "custody version" does.
func setVersion(root *cobra.Command) {
	var b strings.Builder
	readBuildVersion(debug.ReadBuildInfo).write(&b)
	root.Version = b.String()
	root.SetVersionTemplate("{{.Version}}")
}
