/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a DPDK binary ABI of rte-power needs beyond the Rust library.
 *
 * scripts/build-abi.sh links librte_power.so.23 (DPDK 22.11), .24 (23.11),
 * .25 (24.11) and .26 (25.11) each from the same librte_power.a, this file
 * compiled with -DRTE_POWER_ABI=<N>, and a version script made from
 * abi/dpdk<N>.syms, which exports exactly DPDK's symbols of that ABI.
 *
 * - 22.11 and 23.11 export the eleven cpufreq operations (23.11 also eight
 *   uncore operations) as function-pointer variables. The build renames the
 *   Rust functions of those names to NAME__rs in its copy of the archive;
 *   the variables below are statically initialised to them (so they are
 *   never NULL, unlike DPDK's before set_env) and set again at
 *   set_env/init, as DPDK does. A program with a copy relocation of a
 *   variable gets the initial value at load time, and our stores go through
 *   the GOT to its copy.
 * - 24.11 and 25.11 export, as INTERNAL, what DPDK's own driver libraries
 *   (librte_power_acpi.so.25, ...) call when EAL loads them as plugins next
 *   to this library: their registrations are accepted and ignored (our own
 *   drivers serve every env), the sysfs helpers work as DPDK's do.
 *   librte_power_kvm_vm.so.25/.26 (abi/kvm_vm.c) reaches our guest channel
 *   through one such registration, under a name no DPDK driver uses.
 * - Every ABI says once, when loaded, at RTE_POWER_LOG=info, which
 *   library and ABI serve the process; it wraps rte_power_set_env and
 *   rte_power_init (renamed NAME__rs likewise) to set the variables.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef RTE_POWER_ABI
#error "compile with -DRTE_POWER_ABI=23, 24, 25 or 26"
#endif
#ifndef RTE_POWER_RS_VERSION
#define RTE_POWER_RS_VERSION "unknown"
#endif

#if RTE_POWER_ABI == 23
#define DPDK_RELEASE "22.11"
#elif RTE_POWER_ABI == 24
#define DPDK_RELEASE "23.11"
#elif RTE_POWER_ABI == 25
#define DPDK_RELEASE "24.11"
#elif RTE_POWER_ABI == 26
#define DPDK_RELEASE "25.11"
#else
#error "unknown RTE_POWER_ABI"
#endif
#define STR2(x) #x
#define STR(x) STR2(x)

/* ------------------------------------------------------------------ log */

enum { LOG_ERR = 1, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* RTE_POWER_LOG as the Rust library reads it: off, error, warn (default),
 * info, debug. */
static int log_level(void)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {{"off", 0}, {"error", LOG_ERR}, {"warn", LOG_WARN},
		     {"info", LOG_INFO}, {"debug", LOG_DEBUG}};
	const char *v = getenv("RTE_POWER_LOG");
	if (v == NULL)
		return LOG_WARN;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(v, names[i].name) == 0)
			return names[i].level;
	return LOG_WARN;
}

__attribute__((format(printf, 2, 3))) static void say(int level, const char *fmt, ...)
{
	static const char *const tags[] = {"", "ERR", "WARN", "INFO", "DEBUG"};
	char line[512];
	va_list ap;

	if (level > log_level())
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "rte_power: %s: %s\n", tags[level], line);
}

/* Once per process, when the library is loaded: which library and ABI
 * serve it (the evidence that a DPDK program loaded rte-power, not DPDK's
 * librte_power). */
__attribute__((constructor)) static void announce(void)
{
	static int done;

	if (__atomic_exchange_n(&done, 1, __ATOMIC_RELAXED))
		return;
	say(LOG_INFO, "rte-power %s serving the DPDK " DPDK_RELEASE
		      " binary ABI (librte_power.so." STR(RTE_POWER_ABI) ")",
	    RTE_POWER_RS_VERSION);
}

/* ----------------------------------- 22.11, 23.11: pointer variables */

#if RTE_POWER_ABI <= 24
struct rte_power_core_capabilities;

uint32_t rte_power_freqs__rs(unsigned int lcore_id, uint32_t *freqs, uint32_t num);
uint32_t rte_power_get_freq__rs(unsigned int lcore_id);
int rte_power_set_freq__rs(unsigned int lcore_id, uint32_t index);
int rte_power_freq_up__rs(unsigned int lcore_id);
int rte_power_freq_down__rs(unsigned int lcore_id);
int rte_power_freq_max__rs(unsigned int lcore_id);
int rte_power_freq_min__rs(unsigned int lcore_id);
int rte_power_turbo_status__rs(unsigned int lcore_id);
int rte_power_freq_enable_turbo__rs(unsigned int lcore_id);
int rte_power_freq_disable_turbo__rs(unsigned int lcore_id);
int rte_power_get_capabilities__rs(unsigned int lcore_id,
				   struct rte_power_core_capabilities *caps);

/* the types of DPDK 22.11's rte_power.h */
typedef uint32_t (*rte_power_freqs_t)(unsigned int, uint32_t *, uint32_t);
typedef uint32_t (*rte_power_get_freq_t)(unsigned int);
typedef int (*rte_power_set_freq_t)(unsigned int, uint32_t);
typedef int (*rte_power_freq_change_t)(unsigned int);
typedef int (*rte_power_get_capabilities_t)(unsigned int, struct rte_power_core_capabilities *);

#define CPUFREQ_POINTERS(X)                                                    \
	X(rte_power_freqs_t, rte_power_freqs)                                  \
	X(rte_power_get_freq_t, rte_power_get_freq)                            \
	X(rte_power_set_freq_t, rte_power_set_freq)                            \
	X(rte_power_freq_change_t, rte_power_freq_up)                          \
	X(rte_power_freq_change_t, rte_power_freq_down)                        \
	X(rte_power_freq_change_t, rte_power_freq_max)                         \
	X(rte_power_freq_change_t, rte_power_freq_min)                         \
	X(rte_power_freq_change_t, rte_power_turbo_status)                     \
	X(rte_power_freq_change_t, rte_power_freq_enable_turbo)                \
	X(rte_power_freq_change_t, rte_power_freq_disable_turbo)               \
	X(rte_power_get_capabilities_t, rte_power_get_capabilities)

#define DEFINE_POINTER(type, name) type name = name##__rs;
#define SET_POINTER(type, name) name = name##__rs;

CPUFREQ_POINTERS(DEFINE_POINTER)

static void set_cpufreq_pointers(void)
{
	CPUFREQ_POINTERS(SET_POINTER)
}
#else
static void set_cpufreq_pointers(void)
{
}
#endif

#if RTE_POWER_ABI == 24
uint32_t rte_power_get_uncore_freq__rs(unsigned int pkg, unsigned int die);
int rte_power_set_uncore_freq__rs(unsigned int pkg, unsigned int die, uint32_t index);
int rte_power_uncore_freq_max__rs(unsigned int pkg, unsigned int die);
int rte_power_uncore_freq_min__rs(unsigned int pkg, unsigned int die);
int rte_power_uncore_freqs__rs(unsigned int pkg, unsigned int die, uint32_t *freqs,
			       uint32_t num);
int rte_power_uncore_get_num_freqs__rs(unsigned int pkg, unsigned int die);
unsigned int rte_power_uncore_get_num_pkgs__rs(void);
unsigned int rte_power_uncore_get_num_dies__rs(unsigned int pkg);
int rte_power_set_uncore_env__rs(unsigned int env);
int rte_power_uncore_init__rs(unsigned int pkg, unsigned int die);

/* the types of DPDK 23.11's rte_power_uncore.h */
typedef uint32_t (*rte_power_get_uncore_freq_t)(unsigned int, unsigned int);
typedef int (*rte_power_set_uncore_freq_t)(unsigned int, unsigned int, uint32_t);
typedef int (*rte_power_uncore_freq_change_t)(unsigned int, unsigned int);
typedef int (*rte_power_uncore_freqs_t)(unsigned int, unsigned int, uint32_t *, uint32_t);
typedef int (*rte_power_uncore_get_num_freqs_t)(unsigned int, unsigned int);
typedef unsigned int (*rte_power_uncore_get_num_pkgs_t)(void);
typedef unsigned int (*rte_power_uncore_get_num_dies_t)(unsigned int);

#define UNCORE_POINTERS(X)                                                     \
	X(rte_power_get_uncore_freq_t, rte_power_get_uncore_freq)              \
	X(rte_power_set_uncore_freq_t, rte_power_set_uncore_freq)              \
	X(rte_power_uncore_freq_change_t, rte_power_uncore_freq_max)           \
	X(rte_power_uncore_freq_change_t, rte_power_uncore_freq_min)           \
	X(rte_power_uncore_freqs_t, rte_power_uncore_freqs)                    \
	X(rte_power_uncore_get_num_freqs_t, rte_power_uncore_get_num_freqs)    \
	X(rte_power_uncore_get_num_pkgs_t, rte_power_uncore_get_num_pkgs)      \
	X(rte_power_uncore_get_num_dies_t, rte_power_uncore_get_num_dies)

UNCORE_POINTERS(DEFINE_POINTER)

int rte_power_set_uncore_env(unsigned int env)
{
	int r = rte_power_set_uncore_env__rs(env);

	if (r == 0)
		UNCORE_POINTERS(SET_POINTER)
	return r;
}

int rte_power_uncore_init(unsigned int pkg, unsigned int die)
{
	int r = rte_power_uncore_init__rs(pkg, die);

	if (r == 0)
		UNCORE_POINTERS(SET_POINTER)
	return r;
}
#endif

/* ---------------------------------------------- every ABI: set_env, init */

int rte_power_set_env__rs(unsigned int env);
int rte_power_init__rs(unsigned int lcore_id);

int rte_power_set_env(unsigned int env)
{
	int r = rte_power_set_env__rs(env);

	if (r == 0)
		set_cpufreq_pointers();
	return r;
}

int rte_power_init(unsigned int lcore_id)
{
	int r = rte_power_init__rs(lcore_id);

	if (r == 0)
		set_cpufreq_pointers();
	return r;
}

/* --------------------------- 24.11, 25.11: INTERNAL, for DPDK's drivers */

#if RTE_POWER_ABI >= 25
/* lib.power's log type; registered with DPDK's log when a DPDK driver
 * registers (its constructor runs after EAL's, which it depends on) */
int rte_power_logtype;

static void register_logtype(void)
{
	typedef int (*register_t)(const char *name, uint32_t level);
	static int done;
	register_t reg;
	int t;

	if (__atomic_exchange_n(&done, 1, __ATOMIC_RELAXED))
		return;
	reg = (register_t)(uintptr_t)dlsym(RTLD_DEFAULT, "rte_log_register_type_and_pick_level");
	if (reg != NULL && (t = reg("lib.power", 7 /* RTE_LOG_INFO */)) >= 0)
		rte_power_logtype = t;
}

/* The head every DPDK ops struct starts with (power_cpufreq.h and
 * power_uncore_ops.h of 24.11+): a TAILQ entry, then the driver name. */
#define DRIVER_NAMESZ 24
struct ops_head {
	void *next[2];
	char name[DRIVER_NAMESZ];
};

/* struct rte_power_cpufreq_ops: the head, then 14 callbacks, none NULL */
struct cpufreq_ops {
	struct ops_head head;
	void (*cb[14])(void);
};

/* struct rte_power_uncore_ops: the head, cb (may be NULL), 10 callbacks */
struct uncore_ops {
	struct ops_head head;
	void (*cb)(void);
	void (*ops[10])(void);
};

/* abi/kvm_vm.c registers this to reach our guest channel */
#define KVM_BRIDGE_NAME "rte-power-kvm-vm"
struct rte_power_channel_packet;
int rte_power_guest_channel_send_msg(struct rte_power_channel_packet *pkt, unsigned int lcore_id);
int rte_power_guest_channel_receive_msg(void *pkt, size_t pkt_len, unsigned int lcore_id);
struct kvm_bridge {
	struct ops_head head;
	int (*send)(struct rte_power_channel_packet *pkt, unsigned int lcore_id);
	int (*receive)(void *pkt, size_t pkt_len, unsigned int lcore_id);
};

static void driver_name(const struct ops_head *h, char out[DRIVER_NAMESZ + 1])
{
	memcpy(out, h->name, DRIVER_NAMESZ);
	out[DRIVER_NAMESZ] = '\0';
	for (char *c = out; *c != '\0'; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
}

/* A DPDK cpufreq driver registering from its constructor: checked as
 * DPDK checks it (every callback set), then left unused. */
int rte_power_register_cpufreq_ops(struct cpufreq_ops *ops)
{
	char name[DRIVER_NAMESZ + 1];

	if (ops == NULL)
		return -1;
	if (strncmp(ops->head.name, KVM_BRIDGE_NAME, DRIVER_NAMESZ) == 0) {
		struct kvm_bridge *b = (struct kvm_bridge *)ops;

		b->send = rte_power_guest_channel_send_msg;
		b->receive = rte_power_guest_channel_receive_msg;
		return 0;
	}
	register_logtype();
	driver_name(&ops->head, name);
	for (size_t i = 0; i < sizeof(ops->cb) / sizeof(ops->cb[0]); i++)
		if (ops->cb[i] == NULL) {
			say(LOG_ERR, "Missing callbacks while registering cpufreq ops (%s)", name);
			return -1;
		}
	say(LOG_DEBUG, "DPDK cpufreq driver '%s' registered: not used, rte-power's own drivers serve every env", name);
	return 0;
}

/* A DPDK uncore driver: as above; its `cb` is not called (it prepares the
 * DPDK driver, which is never used). */
int rte_power_register_uncore_ops(struct uncore_ops *ops)
{
	char name[DRIVER_NAMESZ + 1];

	if (ops == NULL)
		return -1;
	register_logtype();
	driver_name(&ops->head, name);
	for (size_t i = 0; i < sizeof(ops->ops) / sizeof(ops->ops[0]); i++)
		if (ops->ops[i] == NULL) {
			say(LOG_ERR, "Missing callbacks while registering uncore ops (%s)", name);
			return -1;
		}
	say(LOG_DEBUG, "DPDK uncore driver '%s' registered: not used, rte-power's own uncore serves it", name);
	return 0;
}

/* The helpers DPDK's drivers link against, with DPDK's semantics; the
 * CPU tree is RTE_POWER_SYSFS_CPU_DIR's, as for the rest of the library. */
static const char *cpu_dir(void)
{
	const char *d = getenv("RTE_POWER_SYSFS_CPU_DIR");

	return d != NULL && *d != '\0' ? d : "/sys/devices/system/cpu";
}

int open_core_sysfs_file(FILE **f, const char *mode, const char *format, ...)
{
	char path[PATH_MAX];
	va_list ap;

	va_start(ap, format);
	vsnprintf(path, sizeof(path), format, ap);
	va_end(ap);
	*f = fopen(path, mode);
	return *f == NULL ? -1 : 0;
}

int read_core_sysfs_u32(FILE *f, uint32_t *val)
{
	char buf[BUFSIZ];

	if (fgets(buf, sizeof(buf), f) == NULL)
		return -1;
	buf[sizeof(buf) - 1] = '\0';
	*strchrnul(buf, '\n') = '\0';
	*val = (uint32_t)strtoul(buf, NULL, 10);
	return 0;
}

int read_core_sysfs_s(FILE *f, char *buf, unsigned int len)
{
	if (len == 0 || fgets(buf, (int)len, f) == NULL)
		return -1;
	buf[len - 1] = '\0';
	*strchrnul(buf, '\n') = '\0';
	return 0;
}

int write_core_sysfs_s(FILE *f, const char *str)
{
	if (fseek(f, 0, SEEK_SET) != 0 || fputs(str, f) < 0 || fflush(f) != 0)
		return -1;
	return 0;
}

int cpufreq_check_scaling_driver(const char *driver)
{
	char buf[PATH_MAX];
	FILE *f;

	if (open_core_sysfs_file(&f, "r", "%s/cpu0/cpufreq/scaling_driver", cpu_dir()) != 0)
		return 0;
	if (fgets(buf, sizeof(buf), f) == NULL) {
		fclose(f);
		return 0;
	}
	fclose(f);
	*strchrnul(buf, '\n') = '\0';
	return strncmp(buf, driver, sizeof(buf)) == 0;
}

int power_set_governor(unsigned int lcore_id, const char *new_governor, char *orig_governor,
		       size_t orig_governor_len)
{
	char buf[BUFSIZ];
	FILE *f;
	int r = -1;

	if (open_core_sysfs_file(&f, "rw+", "%s/cpu%u/cpufreq/scaling_governor", cpu_dir(),
				 lcore_id) != 0)
		return -1;
	if (read_core_sysfs_s(f, buf, sizeof(buf)) < 0)
		goto out;
	if (orig_governor != NULL && orig_governor_len > 0)
		snprintf(orig_governor, orig_governor_len, "%s", buf);
	if (strcmp(buf, new_governor) == 0 || write_core_sysfs_s(f, new_governor) == 0)
		r = 0;
out:
	fclose(f);
	return r;
}

/* lcore -> CPU as DPDK 24.11 maps it: EAL's cpuset of the lcore must hold
 * exactly one CPU; without EAL in the process, the identity. */
int power_get_lcore_mapped_cpu_id(uint32_t lcore_id, uint32_t *cpu_id)
{
	typedef int (*to_cpu_id_t)(int);
	typedef cpu_set_t (*cpuset_t)(unsigned int);
	to_cpu_id_t to_cpu_id = (to_cpu_id_t)(uintptr_t)dlsym(RTLD_DEFAULT, "rte_lcore_to_cpu_id");
	cpuset_t cpuset = (cpuset_t)(uintptr_t)dlsym(RTLD_DEFAULT, "rte_lcore_cpuset");
	cpu_set_t set;

	if (cpu_id == NULL)
		return -1;
	if (cpuset == NULL || to_cpu_id == NULL) {
		*cpu_id = lcore_id;
		return 0;
	}
	/* -1 beyond EAL's RTE_MAX_LCORE, where rte_lcore_cpuset must not go */
	if (lcore_id > INT_MAX || to_cpu_id((int)lcore_id) < 0)
		return -1;
	set = cpuset(lcore_id);
	if (CPU_COUNT(&set) != 1)
		return -1;
	for (uint32_t c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set)) {
			*cpu_id = c;
			return 0;
		}
	return -1;
}
#endif
