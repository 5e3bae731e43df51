// SPDX-License-Identifier: MIT
/*
 * virtio-net with user networking and the egress policy, on real KVM.
 * All traffic stays inside the machine the tests run on (the L1 of
 * tools/l1/kvm-run, which has no NIC): servers listen on its loopback,
 * which the guest reaches as 10.0.2.2.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/run.h"

#define TIMEOUT	   600
#define PORT_OPEN  18080 /* a host server the tests allow */
#define PORT_OTHER 18081 /* a second one, never allowed */
#define PORT_FWD   18090 /* host port forwarded into the guest */

#define H hutch_bin()

static char state[] = "/tmp/hutch-net-XXXXXX";

/* A shell command for the guest: GET url, print the body, or FAIL and
 * curl's reason. */
#define GET(url) "curl -g -sS -m 4 " url " || echo FAIL"

static void serve(const char *dir, int port, const char *body)
{
	cr_assert_eq(sh("mkdir -p %s/%s && echo %s > %s/%s/index.html && "
			"cd %s/%s && setsid python3 -m http.server %d --bind "
			"127.0.0.1 >/dev/null 2>&1 </dev/null & "
			"for i in $(seq 100); do python3 -c 'import socket; "
			"socket.create_connection((\"127.0.0.1\",%d))' "
			"2>/dev/null && exit 0; sleep 0.1; done; exit 1",
			state, dir, body, state, dir, state, dir, port, port),
		     0, "the test's HTTP server on port %d did not start",
		     port);
}

static void setup(void)
{
	char vms[64];

	cr_assert(mkdtemp(state));
	snprintf(vms, sizeof(vms), "%s/vms", state);
	cr_assert_eq(mkdir(vms, 0700), 0);
	setenv("HUTCH_STATE_DIR", vms, 1);
	serve("open", PORT_OPEN, "hello-open");
	serve("other", PORT_OTHER, "hello-other");
}

static void teardown(void)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
		 "for d in %s/vms/*/; do [ -e \"$d/pid\" ] && '%s' stop "
		 "\"$(basename \"$d\")\" >/dev/null 2>&1; done; "
		 "pkill -f 'http.server 1808[01]'; rm -rf %s",
		 state, hutch_bin(), state);
	if (system(cmd) != 0)
		fprintf(stderr, "teardown: %s\n", cmd);
}

TestSuite(net, .init = setup, .fini = teardown, .timeout = TIMEOUT);

/* The deny log's lines matching pattern (grep -c). */
static long log_count(const char *log, const char *pattern)
{
	char *out = sh_out("grep -c -- '%s' %s/%s", pattern, state, log);
	long n = strtol(out, NULL, 10);

	free(out);
	return n;
}

Test(net, a_vm_without_net_has_only_loopback)
{
	char *out = sh_out("'%s' run -- ls /sys/class/net", H);

	cr_expect_str_eq(out, "lo");
	free(out);
}

Test(net, user_network_dhcp_resolver_and_an_allowed_host_server)
{
	char *out = sh_out(
	    "'%s' run --net user --allow 10.0.2.2:%d -- sh -c 'grep -h "
	    "nameserver /proc/net/pnp /etc/resolv.conf; ip -4 -o addr show "
	    "dev eth0 | tr -s \" \" | cut -d\" \" -f4; ip route show "
	    "default | cut -d\" \" -f1-3; " GET("http://10.0.2.2:18080/") "'",
	    H, PORT_OPEN);

	/* DHCP gave the address, the route and the resolver; the agent made
	 * the resolver the root's. */
	cr_expect(strstr(out, "nameserver 10.0.2.3\nnameserver 10.0.2.3\n"),
		  "%s", out);
	cr_expect(strstr(out, "10.0.2.15/24\n"), "%s", out);
	cr_expect(strstr(out, "default via 10.0.2.2\n"), "%s", out);
	cr_expect(strstr(out, "hello-open"), "%s", out);
	free(out);
}

Test(net, nothing_leaves_by_default_and_each_denial_is_logged_once)
{
	char *out = sh_out("'%s' run --net user --deny-log %s/deny.log -- sh "
			   "-c '" GET("http://10.0.2.2:18080/") "; " GET(
			       "http://[fec0::2]:18080/") "; "
							  "python3 -c \"import "
							  "socket; "
							  "socket.socket(2, 3, "
							  "1).sendto("
							  "bytes.fromhex("
							  "\\\"0800f7ff00000000"
							  "\\\"), "
							  "(\\\"10.0.2.2\\\", "
							  "0))\"; echo done'",
			   H, state);

	cr_expect(strstr(out, "FAIL"), "%s", out);
	cr_expect(!strstr(out, "hello-open"), "%s", out);
	free(out);
	/* One line per attempt, whatever the SYN retransmits. */
	cr_expect_eq(log_count("deny.log",
			       "\"proto\":\"tcp\",\"dst\":\"10.0.2.2\","
			       "\"port\":18080,\"denied_by\":"
			       "\"default\""),
		     1);
	cr_expect_eq(
	    log_count("deny.log", "\"dst\":\"fec0::2\",\"port\":18080"), 1);
	cr_expect_eq(
	    log_count("deny.log", "\"proto\":\"icmp\",\"dst\":\"10.0.2.2\""),
	    1);
	/* Every line is one JSON object naming the VM. */
	cr_expect_eq(log_count("deny.log", "^{\"time\":\"20[0-9-]*T[0-9:.]*Z\","
					   "\"vm\":\"run-"),
		     3);
}

Test(net, private_and_host_addresses_need_a_rule_of_their_own)
{
	char *out =
	    sh_out("'%s' run --net user --allow 0.0.0.0/0 --deny-log "
		   "%s/deny.log -- sh -c '" GET("http://10.0.2.2:18080/") "'",
		   H, state);

	cr_expect(strstr(out, "FAIL"), "%s", out);
	free(out);
	cr_expect_eq(log_count("deny.log", "\"port\":18080,\"denied_by\":"
					   "\"sensitive\""),
		     1);
	/* A deny rule wins over an allow rule. */
	out = sh_out(
	    "'%s' run --net user --allow 10.0.2.2:%d --deny "
	    "tcp:10.0.2.2/32 -- sh -c '" GET("http://10.0.2.2:18080/") "'",
	    H, PORT_OPEN);
	cr_expect(strstr(out, "FAIL"), "%s", out);
	free(out);
}

Test(net, root_in_the_guest_cannot_lift_the_policy)
{
	/* New MAC, routes and resolver; the allowed server still works
	 * and the other one stays closed. */
	char *out = sh_out(
	    "'%s' run --net user --allow 10.0.2.2:%d --deny-log %s/deny.log "
	    "-- sh -c 'ip link set dev eth0 down; ip link set dev eth0 address "
	    "02:11:22:33:44:55; ip link set dev eth0 up; ip addr add "
	    "10.0.2.99/24 dev eth0; ip route replace default via 10.0.2.3 "
	    "src 10.0.2.99; umount /etc/resolv.conf; echo nameserver 10.0.2.2 "
	    "> /etc/resolv.conf; "
	    "sleep 1; " GET("http://10.0.2.2:18081/") "; " GET(
		"http://10.0.2.2:18080/") "'",
	    H, PORT_OPEN, state);

	cr_expect(strstr(out, "FAIL"), "%s", out);
	cr_expect(!strstr(out, "hello-other"), "%s", out);
	cr_expect(strstr(out, "hello-open"), "%s", out);
	free(out);
	cr_expect_eq(log_count("deny.log", "\"port\":18081"), 1);
}

Test(net, a_rule_added_to_a_running_vm_applies_to_new_connections)
{
	char *out;

	cr_assert_eq(sh("'%s' start --net user v >/dev/null", H), 0);
	out = sh_out("'%s' exec v -- sh -c '" GET("http://10.0.2.2:18080/") "'",
		     H);
	cr_expect(strstr(out, "FAIL"), "%s", out);
	free(out);
	cr_assert_eq(sh("'%s' net v allow 10.0.2.2:%d", H, PORT_OPEN), 0);
	out = sh_out("'%s' exec v -- sh -c '" GET("http://10.0.2.2:18080/") "'",
		     H);
	cr_expect(strstr(out, "hello-open"), "%s", out);
	free(out);
	/* A bad rule is refused with a reason, and changes nothing. */
	out = sh_out("'%s' net v allow 10.0.2.2:99999 2>&1; echo rc=$?", H);
	cr_expect(strstr(out, "rc=2"), "%s", out);
	free(out);
	cr_expect_eq(sh("'%s' stop v", H), 0);
}

Test(net, a_forwarded_host_port_reaches_a_guest_server)
{
	char *out;

	cr_assert_eq(sh("'%s' start --net user,fwd=tcp:127.0.0.1:%d:8080 v "
			">/dev/null",
			H, PORT_FWD),
		     0);
	cr_assert_eq(sh("'%s' exec v -- sh -c 'mkdir -p /tmp/w && echo "
			"from-guest > /tmp/w/index.html && cd /tmp/w && setsid "
			"python3 -m http.server 8080 </dev/null >/dev/null "
			"2>&1 &'",
			H),
		     0);
	/* Replies on the forwarded connection leave, though no rule allows
	 * anything. */
	out = sh_out("for i in $(seq 50); do python3 -c 'import "
		     "urllib.request; print(urllib.request.urlopen("
		     "\"http://127.0.0.1:%d/\", timeout=4).read().decode()."
		     "strip())' 2>/dev/null && break; sleep 0.2; done",
		     PORT_FWD);
	cr_expect_str_eq(out, "from-guest");
	free(out);
	/* But the guest's own connections do not. */
	out = sh_out("'%s' exec v -- sh -c '" GET("http://10.0.2.2:18081/") "'",
		     H);
	cr_expect(strstr(out, "FAIL"), "%s", out);
	free(out);
	cr_expect_eq(sh("'%s' stop v", H), 0);
}

Test(net, bad_net_options_are_refused_before_any_vm_starts)
{
	static const char *const bad[] = {
	    "--net tap",
	    "--net user,mac=01:00:00:00:00:01",
	    "--net user,fwd=tcp:99999:80",
	    "--net user --allow 10.0.0.0/33",
	    "--net user --allow 'tcp:[::1:80'",
	    "--allow 1.2.3.4",
	    "--net user,bogus=1",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *out = sh_out("'%s' run %s -- true 2>&1; echo rc=$?; ls "
				   "%s/vms | wc -l",
				   H, bad[i], state);

		cr_expect(strstr(out, "rc=2\n0"), "%s: %s", bad[i], out);
		free(out);
	}
}
