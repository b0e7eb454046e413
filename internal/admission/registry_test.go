package admission

import (
	"context"
	"os"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/custody-dev/custody/internal/oci"
	"github.com/custody-dev/custody/internal/oci/ocitest"
)

// testRegistry is a real OCI registry on 127.0.0.1: the one scripts/test
// starts (Debian's docker-registry 2.8; a registry with the referrers API
// when CUSTODY_TEST_REGISTRY_REFERRERS names one), else
// go-containerregistry's registry in process. Every test pushes to
// repositories of its own (prefix).
type testRegistry struct {
	host   string
	prefix string
	client *oci.Client
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	host := os.Getenv(ocitest.EnvRegistryReferrers)
	if host == "" {
		host = os.Getenv(ocitest.EnvRegistry)
	}
	if host == "" {
		host = ocitest.InProcess(t, true)
	}
	return registryAt(t, host)
}

// registryAt is the registry at host (plain HTTP).
func registryAt(t *testing.T, host string) *testRegistry {
	t.Helper()
	cl, err := oci.New(oci.Options{Insecure: []string{host}, ConfigPath: writeDockerConfig(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &testRegistry{host: host, prefix: ocitest.RandomRepo("admission"), client: cl}
}

// writeDockerConfig writes an empty Docker config, so that the tests never
// read the user's.
func writeDockerConfig(t *testing.T) string {
	t.Helper()
	p := t.TempDir() + "/config.json"
	if err := os.WriteFile(p, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// repo is the repository name under the test's prefix.
func (r *testRegistry) repo(name string) string { return r.prefix + "/" + name }

// push pushes a random image as repo(name):tag and returns its digest.
func (r *testRegistry) push(t *testing.T, name, tag string) string {
	t.Helper()
	return ocitest.PushImage(t, r.host, r.repo(name), tag).Digest
}

// attach attaches bundle to repo(name)@digest.
func (r *testRegistry) attach(t *testing.T, name, digest string, bundle []byte) {
	t.Helper()
	if _, err := r.client.Attach(context.Background(), oci.Ref{Registry: r.host, Repository: r.repo(name), Digest: digest}, bundle); err != nil {
		t.Fatal(err)
	}
}

// image is the reference of repo(name) with suffix (":tag", "@digest").
func (r *testRegistry) image(name, suffix string) string { return r.host + "/" + r.repo(name) + suffix }

func (r *testRegistry) resolver() Resolver { return OCIResolver(r.client) }

func cronJob(image string) *batchv1.CronJob {
	return &batchv1.CronJob{Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "job", Image: image}}}}}}}}
}
