"""What a user's submit file may say: the allow-list of commands and job attributes, and why others are refused.

Names are lower case; a job attribute `+Name` or `MY.Name` is `my.name`.
"""

from __future__ import annotations

import re

# The submit commands a user may write (lower case), and what each may hold.
ALLOWED_COMMANDS = [
    "executable",
    "arguments",
    "output",
    "error",
    "log",
    "request_cpus",
    "request_memory",
    "request_disk",
    "transfer_input_files",
    "transfer_output_files",
    "should_transfer_files",
    "when_to_transfer_output",
    "notification",
    "universe",
]
PER_JOB_COMMANDS = {"arguments", "output", "error", "log", "transfer_output_files"}
FILE_COMMANDS = {"executable", "output", "error", "log", "transfer_input_files", "transfer_output_files"}
CHOICES = {
    "should_transfer_files": ["YES", "IF_NEEDED"],
    "when_to_transfer_output": ["ON_EXIT", "ON_EXIT_OR_EVICT"],
    "notification": ["Never", "Error", "Complete", "Always"],
    "universe": ["vanilla"],
}
# Job ad attributes (+Name or MY.Name) a user may set: labels only, a quoted string or a number.
ALLOWED_ATTRIBUTES = {"projectname": "ProjectName", "jobbatchname": "JobBatchName"}
ATTRIBUTE_VALUE = re.compile(r'"[A-Za-z0-9 ._:@,+-]{0,200}"|-?\d{1,18}')
# Names HTCondor sets for each job (lower case -> as written for htcondor2).
BUILTINS = {
    "process": "Process",
    "procid": "ProcId",
    "cluster": "Cluster",
    "clusterid": "ClusterId",
    "step": "Step",
    "itemindex": "ItemIndex",
    "row": "Row",
}
ITEM_OK = re.compile(r"[A-Za-z0-9 \t._+,=:@/%~-]*")
MACRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Queue variables other than `arguments` reach htcondor2 under these names, so no item sets a command.
QUEUE_VAR_PREFIX = "PortalItem_"

_NAMES_A_HOST_FILE = "it names a file on the portal's machine"
# Keys the portal sets itself, as canfar_submit does (lower case; "+X" is "my.x").
PORTAL_KEYS = {
    "requirements": "the portal sets Requirements from the snapshot and flavor you choose",
    "my.vmtype": "the portal sets +VMType from the snapshot you choose",
    "my.vmami": "the portal sets +VMAMI from the snapshot you choose",
    "my.vminstancetype": "the portal sets +VMInstanceType from the flavor you choose",
    "my.vmamiconfig": "the portal configures the worker VMs",
    "my.vmkeepalive": "the portal configures the worker VMs",
    "my.precmd": "the portal installs your proxy certificate with its own +PreCmd",
    "my.prearguments": "the portal installs your proxy certificate with its own +PreCmd",
    "my.postcmd": "the portal does not run commands around your job",
    "my.postarguments": "the portal does not run commands around your job",
    "my.portalsubmitkey": "the portal uses it to track your submission",
    "x509userproxy": "the portal sends your proxy certificate with the jobs",
    "use_x509userproxy": "the portal sends your proxy certificate with the jobs",
    "my.x509userproxy": "the portal sends your proxy certificate with the jobs",
}
# Keys that would act on the portal's own machine, or that the portal decides.
REFUSED_KEYS = {
    "getenv": "it would copy the portal's environment, with its secrets, into your jobs",
    "environment": "set environment variables in your script",
    "env": "set environment variables in your script",
    "initialdir": "the portal chooses the directory your jobs are submitted from",
    "iwd": "the portal chooses the directory your jobs are submitted from",
    "remote_initialdir": "the portal chooses the directory your jobs run in",
    "input": "it would send a file of the portal's machine to your job; fetch inputs in your script",
    "in": "it would send a file of the portal's machine to your job; fetch inputs in your script",
    "stdin": "it would send a file of the portal's machine to your job; fetch inputs in your script",
    "cmd": "name your script with executable",
    "out": "write output = ...",
    "err": "write error = ...",
    "transfer_executable": "the portal always sends your script",
    "transfer_output_remaps": "outputs are always returned next to the job's logs",
    "output_destination": "outputs are always returned next to the job's logs",
    "accounting_group": "the pool sets accounting groups",
    "accounting_group_user": "the pool sets accounting groups",
    "owner": "the pool sets the job's owner",
    "my.owner": "the pool sets the job's owner",
    "my.user": "the pool sets the job's owner",
    "copy_to_spool": "the portal always spools",
    "log_xml": "the portal reads classic event logs",
    "dagman_log": "DAGMan is not supported",
    "concurrency_limits": "the pool sets concurrency limits",
    "docker_image": "the portal runs every job in the vanilla universe",
    "container_image": "the portal runs every job in the vanilla universe",
    "jar_files": "the portal runs every job in the vanilla universe",
    "my.cmd": _NAMES_A_HOST_FILE,
    "my.iwd": _NAMES_A_HOST_FILE,
    "my.in": _NAMES_A_HOST_FILE,
    "my.out": _NAMES_A_HOST_FILE,
    "my.err": _NAMES_A_HOST_FILE,
    "my.userlog": _NAMES_A_HOST_FILE,
    "my.transferinput": _NAMES_A_HOST_FILE,
    "my.transferoutput": _NAMES_A_HOST_FILE,
    "my.transferoutputremaps": _NAMES_A_HOST_FILE,
    "my.outputdestination": _NAMES_A_HOST_FILE,
    "my.spooledoutputfiles": _NAMES_A_HOST_FILE,
}
# Other HTCondor submit commands: refused, and never taken for the user's own macros.
OTHER_COMMANDS = frozenset(
    """
    batch_name priority nice_user rank request_gpus request_gpu_memory notify_user email_attributes
    stream_output stream_error max_retries retry_until success_exit_code periodic_hold periodic_release
    periodic_remove periodic_vacate on_exit_hold on_exit_remove next_job_start_delay hold leave_in_queue
    job_lease_duration job_max_vacate_time allowed_job_duration allowed_execute_duration max_idle
    max_materialize coresize kill_sig want_graceful_removal encrypt_input_files encrypt_output_files
    dont_encrypt_input_files dont_encrypt_output_files transfer_plugins transfer_output_remaps
    preserve_relative_paths skip_filechecks submit_event_notes description job_machine_attrs
    job_ad_information_attrs load_profile run_as_owner rendezvousdir keep_claim_idle java_vm_args
    grid_resource image_size executable_size deferral_time cron_minute cron_hour manifest
    use_oauth_services
    """.split()  # noqa: SIM905 (a list of words reads better as words)
)
