package k8s

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Members is the size of the registry cluster an overlay runs: three
// survive the loss of one (docs/scaling.md says when to go to five).
const Members = 3

const (
	etcdClientPort   = 2379
	consulServerPort = 8300
	consulHTTPPort   = 8500
)

// checkRegistry: the overlay runs the registry as a cluster of Members
// behind a headless Service, and every service is pointed at it: at every
// etcd member, or at the Consul agent on its own node, which the agent's
// checks of /health may reach.
func checkRegistry(registry string, services map[string]workload, o *Objects) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	var want func(w workload, env map[string]corev1.EnvVar) error
	switch registry {
	case "etcd":
		sts, svc, err := cluster(o, etcdClientPort)
		if err != nil {
			return append(errs, fmt.Errorf("etcd: %w", err))
		}
		var addrs, peers []string
		for i := range Members {
			member := sts.Name + "-" + strconv.Itoa(i)
			addrs = append(addrs, member+"."+svc.Name+":"+strconv.Itoa(etcdClientPort))
			peers = append(peers, member+"=http://"+member+"."+svc.Name+":2380")
		}
		if got := flagValue(sts.Spec.Template.Spec.Containers[0], "--initial-cluster"); got != strings.Join(peers, ",") {
			fail("StatefulSet/%s: --initial-cluster %q, want %q", sts.Name, got, strings.Join(peers, ","))
		}
		want = func(w workload, env map[string]corev1.EnvVar) error {
			if got := env["MICRO_REGISTRY_ADDRESS"].Value; got != strings.Join(addrs, ",") {
				return fmt.Errorf("%s: MICRO_REGISTRY_ADDRESS %q, want every member: %q", w, got, strings.Join(addrs, ","))
			}
			return nil
		}
	case "consul":
		sts, svc, err := cluster(o, consulServerPort)
		if err != nil {
			return append(errs, fmt.Errorf("consul: %w", err))
		}
		c := sts.Spec.Template.Spec.Containers[0]
		if got := flagValue(c, "-bootstrap-expect"); got != strconv.Itoa(Members) {
			fail("StatefulSet/%s: -bootstrap-expect %q, want %d", sts.Name, got, Members)
		}
		var joins []string
		for i := range Members {
			joins = append(joins, sts.Name+"-"+strconv.Itoa(i)+"."+svc.Name)
		}
		agent := agentOf(o)
		if agent == nil {
			return append(errs, fmt.Errorf("consul: no DaemonSet with the agent's HTTP port %d on the node (hostPort)", consulHTTPPort))
		}
		for _, cc := range []corev1.Container{c, agent.Spec.Template.Spec.Containers[0]} {
			if got := flagValues(cc, "-retry-join"); !slices.Equal(got, joins) {
				fail("consul container %s: -retry-join %q, want every server %q", cc.Name, got, joins)
			}
		}
		agentLabels := agent.Spec.Template.Labels
		want = func(w workload, env map[string]corev1.EnvVar) error {
			if !fieldRef(env, "HOST_IP", "status.hostIP") {
				return fmt.Errorf("%s: HOST_IP does not come from status.hostIP", w)
			}
			if got, want := env["MICRO_REGISTRY_ADDRESS"].Value, "$(HOST_IP):"+strconv.Itoa(consulHTTPPort); got != want {
				return fmt.Errorf("%s: MICRO_REGISTRY_ADDRESS %q, want the node's agent %q", w, got, want)
			}
			if !checkedBy(w, agentLabels, o) {
				return fmt.Errorf("%s: no NetworkPolicy admits the Consul agent's check to port %s", w, healthPort)
			}
			return nil
		}
	default:
		return []error{fmt.Errorf("registry %q: want etcd or consul", registry)}
	}
	for _, w := range services {
		env := map[string]corev1.EnvVar{}
		for _, e := range w.pod.Spec.Containers[0].Env {
			env[e.Name] = e
		}
		if err := want(w, env); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// cluster finds the StatefulSet whose pods serve port, with Members
// replicas, and its headless Service.
func cluster(o *Objects, port int32) (*appsv1.StatefulSet, *corev1.Service, error) {
	for _, s := range o.StatefulSets {
		if len(s.Spec.Template.Spec.Containers) == 0 {
			continue
		}
		if _, ok := containerPort(s.Spec.Template.Spec.Containers[0], intstr.FromInt32(port)); !ok {
			continue
		}
		if s.Spec.Replicas == nil || *s.Spec.Replicas != Members {
			return nil, nil, fmt.Errorf("StatefulSet/%s: replicas %s, want %d", s.Name, show(s.Spec.Replicas), Members)
		}
		for _, svc := range o.Services {
			if svc.Name != s.Spec.ServiceName {
				continue
			}
			if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				return nil, nil, fmt.Errorf("Service/%s: not headless, so its members have no names", svc.Name)
			}
			if !svc.Spec.PublishNotReadyAddresses {
				return nil, nil, fmt.Errorf("Service/%s: members not ready are not published, so they cannot find each other to form a quorum", svc.Name)
			}
			return s, svc, nil
		}
		return nil, nil, fmt.Errorf("StatefulSet/%s: no Service %q", s.Name, s.Spec.ServiceName)
	}
	return nil, nil, fmt.Errorf("no StatefulSet serves port %d", port)
}

// agentOf is the DaemonSet of Consul agents, reached on each node.
func agentOf(o *Objects) *appsv1.DaemonSet {
	for _, d := range o.DaemonSets {
		for _, c := range d.Spec.Template.Spec.Containers {
			if p, ok := containerPort(c, intstr.FromInt32(consulHTTPPort)); ok && p.HostPort == consulHTTPPort {
				return d
			}
		}
	}
	return nil
}

// checkedBy: some policy on w's pods admits its health port from pods
// with the agent's labels.
func checkedBy(w workload, agent map[string]string, o *Objects) bool {
	c := w.pod.Spec.Containers[0]
	health, ok := containerPort(c, intstr.FromString(healthPort))
	if !ok {
		return false
	}
	for _, p := range o.NetworkPolicies {
		if !selects(&p.Spec.PodSelector, w.pod.Labels) {
			continue
		}
		for _, rule := range p.Spec.Ingress {
			if !slices.ContainsFunc(admitted(c, rule.Ports), func(cp corev1.ContainerPort) bool { return cp.ContainerPort == health.ContainerPort }) {
				continue
			}
			for _, peer := range rule.From {
				if peer.NamespaceSelector == nil && selects(peer.PodSelector, agent) {
					return true
				}
			}
		}
	}
	return false
}

// flagValues are the values of a --flag=value or -flag=value argument.
func flagValues(c corev1.Container, flag string) []string {
	var out []string
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

func flagValue(c corev1.Container, flag string) string {
	v := flagValues(c, flag)
	if len(v) != 1 {
		return ""
	}
	return v[0]
}
