//go:build !linux

package childenv

// hideEnviron does nothing where there is no /proc to hide.
func hideEnviron() {}
