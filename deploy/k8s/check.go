package k8s

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Want is what an overlay must deploy.
type Want struct {
	// Registry is "etcd" or "consul": the registry the services are told
	// to use, and that the overlay must run.
	Registry string
	// Services are the Deployments every overlay must have, by name;
	// every Deployment is checked as a service.
	Services []string
	// MinReplicas: services that must run more than one instance.
	MinReplicas map[string]int32
	// Public is the service whose Service and NetworkPolicy admit traffic
	// from outside the cluster, on its port PublicPort (a port name).
	Public, PublicPort string
}

// Ports of every service container, by name (base/*.yaml).
const (
	rpcPort    = "grpc"
	healthPort = "health"
)

// workload is what Check reads of a Deployment, StatefulSet or DaemonSet.
type workload struct {
	kind, name string
	replicas   *int32
	pod        corev1.PodTemplateSpec
	claims     []string // a StatefulSet's volume claim templates
}

func (w workload) String() string { return w.kind + "/" + w.name }

// Check returns every way in which o falls short of want; none is nil.
func Check(o *Objects, want Want) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	var all []workload
	services := map[string]workload{}
	for _, d := range o.Deployments {
		w := workload{kind: "Deployment", name: d.Name, replicas: d.Spec.Replicas, pod: d.Spec.Template}
		all = append(all, w)
		services[d.Name] = w
	}
	for _, s := range o.StatefulSets {
		w := workload{kind: "StatefulSet", name: s.Name, replicas: s.Spec.Replicas, pod: s.Spec.Template}
		for _, c := range s.Spec.VolumeClaimTemplates {
			w.claims = append(w.claims, c.Name)
		}
		all = append(all, w)
	}
	for _, d := range o.DaemonSets {
		all = append(all, workload{kind: "DaemonSet", name: d.Name, pod: d.Spec.Template})
	}

	for _, name := range want.Services {
		if _, ok := services[name]; !ok {
			fail("service %s: no Deployment", name)
		}
	}
	for name, n := range want.MinReplicas {
		if w, ok := services[name]; ok && (w.replicas == nil || *w.replicas < n) {
			fail("%s: replicas %s, want at least %d", w, show(w.replicas), n)
		}
	}

	// Every workload, the registry's too.
	for _, w := range all {
		for _, c := range w.pod.Spec.Containers {
			errs = append(errs, checkContainer(w, c)...)
		}
		errs = append(errs, checkMounts(w)...)
		if w.kind != "DaemonSet" && !slices.ContainsFunc(o.PDBs, func(p *policyv1.PodDisruptionBudget) bool {
			return selects(p.Spec.Selector, w.pod.Labels)
		}) {
			fail("%s: no PodDisruptionBudget selects its pods", w)
		}
	}

	// The services.
	var others []map[string]string
	for _, w := range all {
		if w.kind != "Deployment" {
			others = append(others, w.pod.Labels)
		}
	}
	// Every Deployment is a service (one added from hello.yaml too), and
	// want.Services must be among them (above).
	for _, d := range o.Deployments {
		name, w := d.Name, services[d.Name]
		if len(w.pod.Spec.Containers) != 1 {
			fail("%s: %d containers, want the service's one", w, len(w.pod.Spec.Containers))
			continue
		}
		c := w.pod.Spec.Containers[0]
		if img := "micro-starter/" + name + ":dev"; c.Image != img {
			fail("%s: image %q, want %q (make images)", w, c.Image, img)
		}
		errs = append(errs, checkServiceEnv(w, c, want.Registry, o)...)
		errs = append(errs, checkPolicies(w, c, name == want.Public, want.PublicPort, o.NetworkPolicies, others)...)
	}
	errs = append(errs, checkPublic(services[want.Public], want, o)...)
	errs = append(errs, checkRegistry(want.Registry, services, o)...)
	return errors.Join(errs...)
}

// checkContainer: probes on declared ports, resources, the security context.
func checkContainer(w workload, c corev1.Container) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s container %s: "+format, append([]any{w, c.Name}, args...)...))
	}
	for kind, p := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		if p == nil {
			fail("no %s", kind)
			continue
		}
		var port *intstr.IntOrString
		switch {
		case p.HTTPGet != nil:
			port = &p.HTTPGet.Port
		case p.TCPSocket != nil:
			port = &p.TCPSocket.Port
		case p.GRPC != nil:
			port = &intstr.IntOrString{IntVal: p.GRPC.Port}
		default:
			fail("%s does not ask a port (the images have no shell to exec)", kind)
			continue
		}
		if _, ok := containerPort(c, *port); !ok {
			fail("%s asks port %s, which the container does not declare", kind, port.String())
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			fail("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			fail("no %s limit", r)
		}
	}
	ps, cs := w.pod.Spec.SecurityContext, c.SecurityContext
	if ps == nil {
		ps = &corev1.PodSecurityContext{}
	}
	if cs == nil {
		cs = &corev1.SecurityContext{}
	}
	if !isTrue(cs.RunAsNonRoot) && !isTrue(ps.RunAsNonRoot) {
		fail("runAsNonRoot is not set")
	}
	if uid := firstInt64(cs.RunAsUser, ps.RunAsUser); uid == nil || *uid != 65534 {
		fail("runAsUser %s, want 65534", show(uid))
	}
	if cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
		fail("allowPrivilegeEscalation is not false")
	}
	if !isTrue(cs.ReadOnlyRootFilesystem) {
		fail("readOnlyRootFilesystem is not true")
	}
	if cs.Capabilities == nil || !slices.Contains(cs.Capabilities.Drop, "ALL") || len(cs.Capabilities.Add) > 0 {
		fail("capabilities: want drop ALL and none added")
	}
	// Kubernetes leaves $(X) as it is when X is not defined earlier in the
	// list: an address such as "$(POD_IP):9090" would be used literally.
	defined := map[string]bool{}
	for _, e := range c.Env {
		for _, m := range varRef.FindAllStringSubmatch(e.Value, -1) {
			if !defined[m[1]] {
				fail("env %s refers to $(%s), not defined before it", e.Name, m[1])
			}
		}
		defined[e.Name] = true
	}
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		for _, m := range varRef.FindAllStringSubmatch(a, -1) {
			if !defined[m[1]] {
				fail("command refers to $(%s), not in its env", m[1])
			}
		}
	}
	return errs
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkMounts: every mount names a volume of the pod.
func checkMounts(w workload) []error {
	var errs []error
	for _, c := range w.pod.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if volume(w, m.Name) == nil && !slices.Contains(w.claims, m.Name) {
				errs = append(errs, fmt.Errorf("%s container %s: mount %s names no volume", w, c.Name, m.Name))
			}
		}
	}
	return errs
}

// checkServiceEnv: the address the service advertises, its TLS files and
// where they come from, the registry it is told to use.
func checkServiceEnv(w workload, c corev1.Container, registry string, o *Objects) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{w}, args...)...))
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if !fieldRef(env, "POD_IP", "status.podIP") {
		fail("POD_IP does not come from status.podIP (downward API)")
	}
	rpc, ok := containerPort(c, intstr.FromString(rpcPort))
	if !ok {
		fail("no container port %q", rpcPort)
	} else if got, want := env["MICRO_SERVER_ADDRESS"].Value, "$(POD_IP):"+strconv.Itoa(int(rpc.ContainerPort)); got != want {
		fail("MICRO_SERVER_ADDRESS %q, want %q: the pod IP is the address to advertise", got, want)
	}
	for _, name := range []string{"MICRO_TLS_CA", "MICRO_TLS_CERT", "MICRO_TLS_KEY"} {
		if env[name].Value == "" {
			fail("%s is not set: mutual TLS between services", name)
		}
	}
	// Every file named in the environment is a mounted Secret.
	for _, e := range c.Env {
		if !strings.HasPrefix(e.Value, "/") {
			continue
		}
		m, ok := mountOf(c, e.Value)
		if !ok {
			fail("%s=%s: no volume mounted there", e.Name, e.Value)
			continue
		}
		if v := volume(w, m.Name); v == nil || v.Secret == nil || v.Secret.SecretName == "" {
			fail("%s=%s: volume %s is not a Secret", e.Name, e.Value, m.Name)
		}
	}
	if got := env["MICRO_REGISTRY"].Value; got != registry {
		fail("MICRO_REGISTRY %q, want %q", got, registry)
	}
	// Secret keys are credentials: each from a Secret named after the
	// service, so that no service holds another's.
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
			!strings.HasPrefix(e.ValueFrom.SecretKeyRef.Name, w.name+"-") {
			fail("%s from Secret %s, not one of %s's own", e.Name, e.ValueFrom.SecretKeyRef.Name, w.name)
		}
	}
	return errs
}

// checkPolicies: some NetworkPolicy isolates the service's pods; RPC is
// admitted only from pods (the services), never from any address; only
// the public service admits anyone, and on its public port only.
// others are the labels of pods that are not services (the registry's).
func checkPolicies(w workload, c corev1.Container, public bool, publicPort string, policies []*networkingv1.NetworkPolicy, others []map[string]string) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{w}, args...)...))
	}
	rpc, _ := containerPort(c, intstr.FromString(rpcPort))
	isolated, open := false, false
	for _, p := range policies {
		if !selects(&p.Spec.PodSelector, w.pod.Labels) || !slices.Contains(p.Spec.PolicyTypes, "Ingress") {
			continue
		}
		isolated = true
		for _, rule := range p.Spec.Ingress {
			for _, port := range admitted(c, rule.Ports) {
				if port.ContainerPort == rpc.ContainerPort && len(rule.From) == 0 {
					fail("NetworkPolicy %s admits RPC (%d) from anyone", p.Name, port.ContainerPort)
				}
				if port.ContainerPort == rpc.ContainerPort && slices.ContainsFunc(rule.From, func(peer networkingv1.NetworkPolicyPeer) bool {
					return peer.IPBlock != nil || peer.NamespaceSelector != nil
				}) {
					fail("NetworkPolicy %s admits RPC (%d) from addresses or namespaces, not the services' pods", p.Name, port.ContainerPort)
				}
				// An empty pod selector is every pod of the namespace.
				if port.ContainerPort == rpc.ContainerPort && slices.ContainsFunc(rule.From, func(peer networkingv1.NetworkPolicyPeer) bool {
					return peer.IPBlock == nil && peer.NamespaceSelector == nil &&
						(!selects(peer.PodSelector, w.pod.Labels) || slices.ContainsFunc(others, func(l map[string]string) bool { return selects(peer.PodSelector, l) }))
				}) {
					fail("NetworkPolicy %s admits RPC (%d) from pods other than the services'", p.Name, port.ContainerPort)
				}
				if len(rule.From) == 0 {
					if !public || port.Name != publicPort {
						fail("NetworkPolicy %s admits port %d (%s) from anyone", p.Name, port.ContainerPort, port.Name)
					} else {
						open = true
					}
				}
			}
		}
	}
	if !isolated {
		fail("no NetworkPolicy with Ingress selects its pods")
	}
	if public && !open {
		fail("no NetworkPolicy admits port %s from outside", publicPort)
	}
	return errs
}

// checkPublic: a Service sends outside traffic to the public service's port.
func checkPublic(w workload, want Want, o *Objects) []error {
	if w.name == "" {
		return nil // reported as a missing service
	}
	c := w.pod.Spec.Containers[0]
	for _, s := range o.Services {
		if !selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, w.pod.Labels) || len(s.Spec.Selector) == 0 {
			continue
		}
		for _, sp := range s.Spec.Ports {
			if p, ok := containerPort(c, sp.TargetPort); ok && p.Name == want.PublicPort {
				return nil
			}
		}
		return []error{fmt.Errorf("Service/%s selects %s but targets no port %s", s.Name, w, want.PublicPort)}
	}
	return []error{fmt.Errorf("%s: no Service selects its pods", w)}
}

// admitted is the container ports a rule's ports admit; no ports: all.
func admitted(c corev1.Container, ports []networkingv1.NetworkPolicyPort) []corev1.ContainerPort {
	if len(ports) == 0 {
		return c.Ports
	}
	var out []corev1.ContainerPort
	for _, p := range ports {
		if p.Port == nil {
			return c.Ports
		}
		if cp, ok := containerPort(c, *p.Port); ok {
			out = append(out, cp)
		}
	}
	return out
}

// containerPort finds a declared port by name or number.
func containerPort(c corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

// mountOf is the mount a path lies under.
func mountOf(c corev1.Container, path string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

func volume(w workload, name string) *corev1.Volume {
	for i, v := range w.pod.Spec.Volumes {
		if v.Name == name {
			return &w.pod.Spec.Volumes[i]
		}
	}
	return nil
}

func fieldRef(env map[string]corev1.EnvVar, name, path string) bool {
	e, ok := env[name]
	return ok && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == path
}

// selects: an empty or missing selector selects nothing here, as a PDB's or
// a Service's would mean everything or nothing: neither is what we want.
func selects(sel *metav1.LabelSelector, set map[string]string) bool {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(set))
}

func isTrue(b *bool) bool { return b != nil && *b }

func firstInt64(vs ...*int64) *int64 {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

func show[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
