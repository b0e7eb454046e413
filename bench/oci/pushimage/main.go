// Command pushimage pushes a random image (one 1 KiB layer) to
// HOST/REPO:TAG over plain HTTP and prints HOST/REPO@sha256:HEX: the image
// the bench/oci script attaches evidence to and verifies.
package main

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: pushimage HOST/REPO:TAG")
		os.Exit(2)
	}
	if err := push(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "pushimage:", err)
		os.Exit(1)
	}
}

func push(ref string) error {
	img, err := random.Image(1024, 1)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(tag, img); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(tag.Context().Name() + "@" + d.String())
	return nil
}
