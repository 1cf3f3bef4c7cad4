"""SentinelOne Cloud Funnel raw events to the ECS documents of Elastic's
``sentinel_one_cloud_funnel`` integration (its ``event`` data stream).

The integration's ingest pipeline (package 1.15.0: ``default.yml`` and one
sub-pipeline per event category) is written here as ordered step tables, run
by a small interpreter with the same semantics as the Elasticsearch processors
it uses:

- ``("m", raw, custom, conv)``: rename / convert / date of the raw field
  ``raw`` (a path in the dot-expanded event) into ``custom`` (``~`` stands
  for ``sentinel_one_cloud_funnel.event.``); ``conv`` is ``""`` (as is),
  ``long``, ``string``, ``boolean``, ``ip``, ``date`` (ISO8601 or epoch ms)
  or ``time`` (also ``HH:mm:ss.SSS``). Empty strings are skipped.
- ``("s", field, source)``: ``set`` with ``copy_from`` and
  ``ignore_empty_value``.
- ``("a", field, source)``: ``append`` of the source rendered as a string,
  without duplicates, when the source is not null.
- ``("h", name)``: a step written as code (conditions, scripts, dissect).

Sub-pipelines are chosen as the integration chooses them: by a substring of
the lower-cased raw ``event.category`` (``file``, ``process``, ``ip``, ...).
Events stay in ``logs-sentinel_one_cloud_funnel.event-default`` unless the
category is listed in ``reroute`` (the integration's ``_conf.reroute``), in
which case they go to ``logs-sentinel_one_cloud_funnel.<category>-default``
as its routing rules send them.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from vigil.errors import VigilError

INDEX = "logs-sentinel_one_cloud_funnel.event-default"
ECS_VERSION = "8.11.0"
_CUSTOM = "sentinel_one_cloud_funnel.event."
_OS_TYPES = ("linux", "windows", "macos", "ios", "android")
# Categories the integration's routing rules know (routing_rules.yml).
ROUTED = (
    "command_script",
    "cross_process",
    "dns",
    "file",
    "indicators",
    "logins",
    "module",
    "ip",
    "process",
    "registry",
    "scheduled_task",
    "threat_intelligence_indicators",
    "url",
)
# Custom fields the pipeline drops when a copy went to ECS, unless the event is
# tagged ``preserve_duplicate_custom_fields`` (processor remove_9782d7f7).
_DUPLICATES = (
    "dst.ip_address dst.port_number endpoint.name endpoint.os endpoint.type group.id id "
    "k8s_cluster.container.id k8s_cluster.container.image.sha256 k8s_cluster.container.image.value "
    "k8s_cluster.container.labels k8s_cluster.container.name login.tgt.domain_name "
    "login.tgt.user.name login.user_name logout.tgt.domain_name logout.tgt.user.name "
    "network.protocol_name os.name os_src_process.parent.image.md5 registry.key.path registry.val "
    "src.endpoint.ip.address src.ip.address src.port.number src.process.cmd_line "
    "src.process.display_name src.process.e_user.name src.process.e_user.uid src.process.image.md5 "
    "src.process.image.sha1 src.process.image.sha256 src.process.name src.process.parent.cmd_line "
    "src.process.parent.display_name src.process.parent.e_user.name src.process.parent.e_user.uid "
    "src.process.parent.image.sha1 src.process.parent.image.sha256 src.process.parent.name "
    "src.process.parent.pid src.process.parent.r_user.name src.process.parent.r_user.uid "
    "src.process.parent.start_time src.process.parent.user.name src.process.pid "
    "src.process.r_user.name src.process.r_user.uid src.process.start_time src.process.tid "
    "src.process.user.name tgt.file.creation_time tgt.file.extension tgt.file.md5 "
    "tgt.file.modification_time tgt.file.name tgt.file.path tgt.file.sha1 tgt.file.sha256 "
    "tgt.file.size tgt.file.type tgt.process.user.name ti_indicator.description "
    "ti_indicator.mitre_tactics ti_indicator.references time url.address"
).split()

# default.yml, in order.
_MAIN: list[tuple] = [
    ("m", "event.time", "~time", "date"),
    ("h", "timestamp"),
    ("m", "event.logout.tgt.user.name", "~logout.tgt.user.name", ""),
    ("s", "destination.user.name", "~logout.tgt.user.name"),
    ("m", "event.login.tgt.domainName", "~login.tgt.domain_name", ""),
    ("s", "destination.user.domain", "~login.tgt.domain_name"),
    ("m", "event.logout.tgt.domainName", "~logout.tgt.domain_name", ""),
    ("s", "destination.user.domain", "~logout.tgt.domain_name"),
    ("m", "event.login.tgt.user.name", "~login.tgt.user.name", ""),
    ("s", "destination.user.name", "~login.tgt.user.name"),
    ("a", "related.user", "destination.user.name"),
    ("a", "related.user", "destination.user.domain"),
    ("m", "event.id", "~id", ""),
    ("s", "event.id", "~id"),
    ("m", "tgt.file.name", "~tgt.file.name", ""),
    ("s", "file.name", "~tgt.file.name"),
    ("m", "group.id", "~group.id", ""),
    ("s", "group.id", "~group.id"),
    ("m", "endpoint.name", "~endpoint.name", ""),
    ("s", "host.hostname", "~endpoint.name"),
    ("a", "related.hosts", "~endpoint.name"),
    ("m", "os.name", "~os_name", ""),
    ("s", "host.os.name", "~os_name"),
    # The pipeline tests ``os.name`` here, a field it never writes.
    ("a", "related.hosts", "~os_name", "~os.name"),
    ("m", "endpoint.os", "~endpoint.os", ""),
    ("s", "host.os.platform", "~endpoint.os"),
    ("h", "host_os_type"),
    ("a", "related.hosts", "~endpoint.os"),
    ("m", "endpoint.type", "~endpoint.type", ""),
    ("s", "host.type", "~endpoint.type"),
    ("a", "related.hosts", "~endpoint.type"),
    ("m", "src.process.cmdline", "~src.process.cmd_line", ""),
    ("s", "process.command_line", "~src.process.cmd_line"),
    ("m", "src.process.image.path", "~src.process.image.path", ""),
    ("s", "process.executable", "~src.process.image.path"),
    ("m", "src.process.image.md5", "~src.process.image.md5", ""),
    ("s", "process.hash.md5", "~src.process.image.md5"),
    ("a", "related.hash", "process.hash.md5"),
    ("m", "src.process.image.sha1", "~src.process.image.sha1", ""),
    ("s", "process.hash.sha1", "~src.process.image.sha1"),
    ("a", "related.hash", "process.hash.sha1"),
    ("m", "src.process.image.sha256", "~src.process.image.sha256", ""),
    ("s", "process.hash.sha256", "~src.process.image.sha256"),
    ("a", "related.hash", "process.hash.sha256"),
    ("m", "src.process.name", "~src.process.name", ""),
    ("s", "process.name", "~src.process.name"),
    ("m", "src.process.parent.cmdline", "~src.process.parent.cmd_line", ""),
    ("s", "process.parent.command_line", "~src.process.parent.cmd_line"),
    ("m", "osSrc.process.parent.image.path", "~os_src_process.parent.image.path", ""),
    ("m", "osSrc.process.parent.image.md5", "~os_src_process.parent.image.md5", ""),
    ("s", "process.parent.hash.md5", "~os_src_process.parent.image.md5"),
    ("a", "related.hash", "process.parent.hash.md5"),
    ("m", "src.process.parent.image.sha1", "~src.process.parent.image.sha1", ""),
    ("s", "process.parent.hash.sha1", "~src.process.parent.image.sha1"),
    ("a", "related.hash", "process.parent.hash.sha1"),
    ("m", "src.process.parent.image.sha256", "~src.process.parent.image.sha256", ""),
    ("s", "process.parent.hash.sha256", "~src.process.parent.image.sha256"),
    ("a", "related.hash", "process.parent.hash.sha256"),
    ("m", "src.process.parent.name", "~src.process.parent.name", ""),
    ("s", "process.parent.name", "~src.process.parent.name"),
    ("m", "src.process.parent.pid", "~src.process.parent.pid", "long"),
    ("s", "process.parent.pid", "~src.process.parent.pid"),
    ("m", "src.process.parent.rUserUid", "~src.process.parent.r_user.uid", "string"),
    ("s", "process.parent.real_user.id", "~src.process.parent.r_user.uid"),
    ("a", "related.user", "process.parent.real_user.id"),
    ("m", "src.process.parent.rUserName", "~src.process.parent.r_user.name", ""),
    ("s", "process.parent.real_user.name", "~src.process.parent.r_user.name"),
    ("a", "related.user", "process.parent.real_user.name"),
    ("m", "src.process.parent.startTime", "~src.process.parent.start_time", "date"),
    ("s", "process.parent.start", "~src.process.parent.start_time"),
    ("m", "src.process.parent.displayName", "~src.process.parent.display_name", ""),
    ("s", "process.parent.title", "~src.process.parent.display_name"),
    ("m", "src.process.parent.eUserUid", "~src.process.parent.e_user.uid", "string"),
    ("s", "process.parent.user.id", "~src.process.parent.e_user.uid"),
    ("a", "related.user", "process.parent.user.id"),
    ("m", "src.process.parent.eUserName", "~src.process.parent.e_user.name", ""),
    ("s", "process.parent.user.name", "~src.process.parent.e_user.name"),
    ("m", "src.process.parent.user", "~src.process.parent.user.name", ""),
    ("s", "process.parent.user.name", "~src.process.parent.user.name"),
    ("a", "related.user", "process.parent.user.name"),
    ("m", "src.process.pid", "~src.process.pid", "long"),
    ("s", "process.pid", "~src.process.pid"),
    ("m", "tgt.process.pid", "~tgt.process.pid", "string"),
    ("m", "src.process.rUserUid", "~src.process.r_user.uid", "string"),
    ("s", "process.real_user.id", "~src.process.r_user.uid"),
    ("a", "related.user", "process.real_user.id"),
    ("m", "src.process.rUserName", "~src.process.r_user.name", ""),
    ("s", "process.real_user.name", "~src.process.r_user.name"),
    ("a", "related.user", "process.real_user.name"),
    ("m", "src.process.startTime", "~src.process.start_time", "date"),
    ("s", "process.start", "~src.process.start_time"),
    ("m", "src.process.displayName", "~src.process.display_name", ""),
    ("s", "process.title", "~src.process.display_name"),
    ("m", "src.process.eUserUid", "~src.process.e_user.uid", "string"),
    ("s", "process.user.id", "~src.process.e_user.uid"),
    ("m", "src.process.user", "~src.process.user.name", ""),
    ("s", "process.user.name", "~src.process.user.name"),
    ("s", "user.name", "process.user.name"),
    ("s", "user.domain", "process.user.name"),
    ("h", "split_user"),
    ("m", "src.process.eUserName", "~src.process.e_user.name", ""),
    ("s", "process.user.name", "~src.process.e_user.name"),
    ("m", "tiIndicator.description", "~ti_indicator.description", ""),
    ("s", "threat.indicator.description", "~ti_indicator.description"),
    ("m", "tiIndicator.references", "~ti_indicator.references", ""),
    ("s", "threat.indicator.reference", "~ti_indicator.references"),
    ("m", "tiIndicator.mitreTactics", "~ti_indicator.mitre_tactics", ""),
    ("a", "threat.tactic.name", "~ti_indicator.mitre_tactics"),
    ("m", "account.id", "~account_id", ""),
    ("m", "agent.uuid", "~agent.uuid", ""),
    ("s", "host.id", "~agent.uuid"),
    ("m", "agent.version", "~agent.version", ""),
    ("m", "dataSource.name", "~data_source.name", ""),
    ("m", "event.category", "~category", ""),
    ("m", "event.repetitionCount", "~repetition_count", "long"),
    ("m", "event.type", "~type", ""),
    ("m", "i.scheme", "~i.scheme", ""),
    ("m", "i.version", "~i.version", ""),
    ("m", "meta.event.name", "~meta_event_name", ""),
    ("m", "mgmt.url", "~mgmt.url", ""),
    ("m", "osSrc.process.activeContent.hash", "~os_src_process.active_content.hash", ""),
    ("m", "osSrc.process.activeContent.id", "~os_src_process.active_content.id", ""),
    ("m", "osSrc.process.activeContent.path", "~os_src_process.active_content.path", ""),
    ("m", "osSrc.process.activeContent.signedStatus", "~os_src_process.active_content.signed_status", ""),
    ("m", "osSrc.process.activeContentType", "~os_src_process.active_content.type", ""),
    ("m", "osSrc.process.childProcCount", "~os_src_process.child_proc_count", "long"),
    ("m", "osSrc.process.cmdline", "~os_src_process.cmd_line", ""),
    ("m", "osSrc.process.crossProcessCount", "~os_src_process.cross_process.count", "long"),
    (
        "m",
        "osSrc.process.crossProcessDupRemoteProcessHandleCount",
        "~os_src_process.cross_process.dup.remote_process_handle_count",
        "long",
    ),
    (
        "m",
        "osSrc.process.crossProcessDupThreadHandleCount",
        "~os_src_process.cross_process.dup.thread_handle_count",
        "long",
    ),
    (
        "m",
        "osSrc.process.crossProcessOpenProcessCount",
        "~os_src_process.cross_process.open_process_count",
        "long",
    ),
    (
        "m",
        "osSrc.process.crossProcessOutOfStorylineCount",
        "~os_src_process.cross_process.out_of_storyline_count",
        "long",
    ),
    (
        "m",
        "osSrc.process.crossProcessThreadCreateCount",
        "~os_src_process.cross_process.thread_create_count",
        "long",
    ),
    ("m", "osSrc.process.displayName", "~os_src_process.display_name", ""),
    ("m", "osSrc.process.dnsCount", "~os_src_process.dns_count", "long"),
    ("m", "osSrc.process.image.binaryIsExecutable", "~os_src_process.image.binary_is_executable", "boolean"),
    ("m", "osSrc.process.image.md5", "~os_src_process.image.md5", ""),
    ("a", "related.hash", "~os_src_process.image.md5"),
    ("m", "osSrc.process.image.path", "~os_src_process.image.path", ""),
    ("m", "osSrc.process.image.sha1", "~os_src_process.image.sha1", ""),
    ("a", "related.hash", "~os_src_process.image.sha1"),
    ("m", "osSrc.process.image.sha256", "~os_src_process.image.sha256", ""),
    ("a", "related.hash", "~os_src_process.image.sha256"),
    (
        "m",
        "osSrc.process.indicatorBootConfigurationUpdateCount",
        "~os_src_process.indicator.boot_configuration_update_count",
        "long",
    ),
    ("m", "osSrc.process.indicatorEvasionCount", "~os_src_process.indicator.evasion_count", "long"),
    ("m", "osSrc.process.indicatorExploitationCount", "~os_src_process.indicator.exploitation_count", "long"),
    ("m", "osSrc.process.indicatorGeneral.count", "~os_src_process.indicator.general_count", "long"),
    ("m", "osSrc.process.indicatorInfostealerCount", "~os_src_process.indicator_info_stealer_count", "long"),
    ("m", "osSrc.process.indicatorInjectionCount", "~os_src_process.indicator.injection_count", "long"),
    ("m", "osSrc.process.indicatorPersistenceCount", "~os_src_process.indicator.persistence_count", "long"),
    (
        "m",
        "osSrc.process.indicatorPostExploitationCount",
        "~os_src_process.indicator.post_exploitation_count",
        "long",
    ),
    ("m", "osSrc.process.indicatorRansomwareCount", "~os_src_process.indicator.ransomware_count", "long"),
    (
        "m",
        "osSrc.process.indicatorReconnaissanceCount",
        "~os_src_process.indicator.reconnaissance_count",
        "long",
    ),
    ("m", "osSrc.process.integrityLevel", "~os_src_process.integrity_level", ""),
    ("m", "osSrc.process.isNative64Bit", "~os_src_process.is_native_64_bit", "boolean"),
    ("m", "osSrc.process.isRedirectCmdProcessor", "~os_src_process.is_redirect_cmd_processor", "boolean"),
    ("m", "osSrc.process.isStorylineRoot", "~os_src_process.is_storyline_root", "boolean"),
    ("m", "osSrc.process.moduleCount", "~os_src_process.module_count", "long"),
    ("m", "osSrc.process.name", "~os_src_process.name", ""),
    ("m", "osSrc.process.netConnCount", "~os_src_process.net_conn.count", "long"),
    ("m", "osSrc.process.netConnInCount", "~os_src_process.net_conn.in_count", "long"),
    ("m", "osSrc.process.netConnOutCount", "~os_src_process.net_conn.out_count", "long"),
    ("m", "osSrc.process.parent.activeContent.hash", "~os_src_process.parent.active_content.hash", ""),
    ("m", "osSrc.process.parent.activeContent.id", "~os_src_process.parent.active_content.id", ""),
    ("m", "osSrc.process.parent.activeContent.path", "~os_src_process.parent.active_content.path", ""),
    (
        "m",
        "osSrc.process.parent.activeContent.signedStatus",
        "~os_src_process.parent.active_content.signed_status",
        "",
    ),
    ("m", "osSrc.process.parent.activeContentType", "~os_src_process.parent.active_content.type", ""),
    ("m", "osSrc.process.parent.cmdline", "~os_src_process.parent.cmd_line", ""),
    ("m", "osSrc.process.parent.displayName", "~os_src_process.parent.display_name", ""),
    ("m", "osSrc.process.parent.image.sha1", "~os_src_process.parent.image.sha1", ""),
    ("a", "related.hash", "~os_src_process.parent.image.sha1"),
    ("m", "osSrc.process.parent.image.sha256", "~os_src_process.parent.image.sha256", ""),
    ("a", "related.hash", "~os_src_process.parent.image.sha256"),
    ("m", "osSrc.process.parent.integrityLevel", "~os_src_process.parent.integrity_level", ""),
    ("m", "osSrc.process.parent.isNative64Bit", "~os_src_process.parent.is_native_64_bit", "boolean"),
    (
        "m",
        "osSrc.process.parent.isRedirectCmdProcessor",
        "~os_src_process.parent.is_redirect_cmd_processor",
        "boolean",
    ),
    ("m", "osSrc.process.parent.isStorylineRoot", "~os_src_process.parent.is_storyline_root", "boolean"),
    ("m", "osSrc.process.parent.name", "~os_src_process.parent.name", ""),
    ("m", "osSrc.process.parent.pid", "~os_src_process.parent.pid", "string"),
    ("m", "osSrc.process.parent.publisher", "~os_src_process.parent.publisher", ""),
    (
        "m",
        "osSrc.process.parent.reasonSignatureInvalid",
        "~os_src_process.parent.reason_signature_invalid",
        "",
    ),
    ("m", "osSrc.process.parent.sessionId", "~os_src_process.parent.session_id", "string"),
    ("m", "osSrc.process.parent.signedStatus", "~os_src_process.parent.signed_status", ""),
    ("m", "osSrc.process.parent.startTime", "~os_src_process.parent.start_time", "date"),
    ("m", "osSrc.process.parent.storyline.id", "~os_src_process.parent.storyline_id", ""),
    ("m", "osSrc.process.parent.uid", "~os_src_process.parent.uid", ""),
    ("m", "osSrc.process.parent.user", "~os_src_process.parent.user.name", ""),
    ("a", "related.user", "~os_src_process.parent.user.name"),
    ("m", "osSrc.process.pid", "~os_src_process.pid", "string"),
    ("m", "osSrc.process.publisher", "~os_src_process.publisher", ""),
    ("m", "osSrc.process.reasonSignatureInvalid", "~os_src_process.reason_signature_invalid", ""),
    ("m", "osSrc.process.registryChangeCount", "~os_src_process.registry_change_count", "long"),
    ("m", "osSrc.process.sessionId", "~os_src_process.session_id", "string"),
    ("m", "osSrc.process.signedStatus", "~os_src_process.signed_status", ""),
    ("m", "osSrc.process.startTime", "~os_src_process.start_time", "date"),
    ("m", "osSrc.process.storyline.id", "~os_src_process.storyline_id", ""),
    ("m", "osSrc.process.subsystem", "~os_src_process.subsystem", ""),
    ("m", "osSrc.process.tgtFileCreationCount", "~os_src_process.tgt_file.creation_count", "long"),
    ("m", "osSrc.process.tgtFileDeletionCount", "~os_src_process.tgt_file.deletion_count", "long"),
    ("m", "osSrc.process.tgtFileModificationCount", "~os_src_process.tgt_file.modification_count", "long"),
    ("m", "osSrc.process.uid", "~os_src_process.uid", ""),
    ("m", "osSrc.process.user", "~os_src_process.user.name", ""),
    ("a", "related.user", "~os_src_process.user.name"),
    ("m", "osSrc.process.verifiedStatus", "~os_src_process.verified_status", ""),
    ("m", "sca:atlantisIngestTime", "~sca.atlantis_ingest_time", "date"),
    ("m", "site.id", "~site.id", ""),
    ("m", "site.name", "~site.name", ""),
    ("m", "src.process.activeContent.hash", "~src.process.active_content.hash", ""),
    ("m", "src.process.activeContent.id", "~src.process.active_content.id", ""),
    ("m", "src.process.activeContent.path", "~src.process.active_content.path", ""),
    ("m", "src.process.activeContent.signedStatus", "~src.process.active_content.signed_status", ""),
    ("m", "src.process.activeContentType", "~src.process.active_content.type", ""),
    ("m", "src.process.childProcCount", "~src.process.child_proc_count", "long"),
    (
        "m",
        "src.process.crossProcessDupRemoteProcessHandleCount",
        "~src.process.cross_process.dup.remote_process_handle_count",
        "long",
    ),
    (
        "m",
        "src.process.crossProcessOpenProcessCount",
        "~src.process.cross_process.open_process_count",
        "long",
    ),
    ("m", "src.process.indicatorExploitationCount", "~src.process.indicator.exploitation_count", "long"),
    ("m", "src.process.indicatorInjectionCount", "~src.process.indicator.injection_count", "long"),
    ("m", "src.process.indicatorRansomwareCount", "~src.process.indicator.ransomware_count", "long"),
    ("m", "src.process.indicatorReconnaissanceCount", "~src.process.indicator.reconnaissance_count", "long"),
    ("m", "src.process.integrityLevel", "~src.process.integrity_level", ""),
    ("m", "src.process.lUserName", "~src.process.l_user.name", ""),
    ("a", "related.user", "~src.process.l_user.name"),
    ("m", "src.process.lUserUid", "~src.process.l_user.uid", "string"),
    ("a", "related.user", "~src.process.l_user.uid"),
    ("m", "src.process.moduleCount", "~src.process.module_count", "long"),
    ("m", "src.process.netConnInCount", "~src.process.net_conn.in_count", "long"),
    ("m", "src.process.parent.activeContent.hash", "~src.process.parent.active_content.hash", ""),
    ("m", "src.process.parent.activeContent.id", "~src.process.parent.active_content.id", ""),
    ("m", "src.process.parent.activeContent.path", "~src.process.parent.active_content.path", ""),
    (
        "m",
        "src.process.parent.activeContent.signedStatus",
        "~src.process.parent.active_content.signed_status",
        "",
    ),
    ("m", "src.process.parent.activeContentType", "~src.process.parent.active_content.type", ""),
    ("m", "src.process.parent.image.md5", "~src.process.parent.image.md5", ""),
    ("a", "related.hash", "~src.process.parent.image.md5"),
    ("m", "src.process.parent.image.path", "~src.process.parent.image.path", ""),
    ("s", "process.parent.executable", "~src.process.parent.image.path"),
    ("m", "src.process.parent.integrityLevel", "~src.process.parent.integrity_level", ""),
    ("m", "src.process.parent.isNative64Bit", "~src.process.parent.is_native_64_bit", "boolean"),
    (
        "m",
        "src.process.parent.isRedirectCmdProcessor",
        "~src.process.parent.is_redirect_cmd_processor",
        "boolean",
    ),
    ("m", "src.process.parent.isStorylineRoot", "~src.process.parent.is_storyline_root", "boolean"),
    ("m", "src.process.parent.lUserName", "~src.process.parent.l_user.name", ""),
    ("a", "related.user", "~src.process.parent.l_user.name"),
    ("m", "src.process.parent.lUserUid", "~src.process.parent.l_user.uid", "string"),
    ("a", "related.user", "~src.process.parent.l_user.uid"),
    ("m", "src.process.parent.publisher", "~src.process.parent.publisher", ""),
    ("m", "src.process.parent.reasonSignatureInvalid", "~src.process.parent.reason_signature_invalid", ""),
    ("m", "src.process.parent.sessionId", "~src.process.parent.session_id", "string"),
    ("m", "src.process.parent.signedStatus", "~src.process.parent.signed_status", ""),
    ("m", "src.process.parent.storyline.id", "~src.process.parent.storyline_id", ""),
    ("m", "src.process.parent.uid", "~src.process.parent.uid", ""),
    ("s", "process.parent.entity_id", "~src.process.parent.uid"),
    ("m", "src.process.parent.userSid", "~src.process.parent.user.sid", ""),
    ("a", "related.user", "~src.process.parent.user.sid"),
    ("m", "src.process.storyline.id", "~src.process.storyline_id", ""),
    ("m", "src.process.subsystem", "~src.process.subsystem", ""),
    ("m", "src.process.tgtFileCreationCount", "~src.process.tgt_file.creation_count", "long"),
    ("m", "tgt.file.isSigned", "~tgt.file.is_signed", ""),
    ("m", "tgt.process.eUserName", "~tgt.process.e_user.name", ""),
    ("a", "related.user", "~tgt.process.e_user.name"),
    ("m", "tgt.process.eUserUid", "~tgt.process.e_user.uid", "string"),
    ("a", "related.user", "~tgt.process.e_user.uid"),
    ("m", "tgt.process.lUserName", "~tgt.process.l_user.name", ""),
    ("a", "related.user", "~tgt.process.l_user.name"),
    ("m", "tgt.process.lUserUid", "~tgt.process.l_user.uid", "string"),
    ("a", "related.user", "~tgt.process.l_user.uid"),
    ("m", "tgt.process.rUserName", "~tgt.process.r_user.name", ""),
    ("a", "related.user", "~tgt.process.r_user.name"),
    ("m", "tgt.process.rUserUid", "~tgt.process.r_user.uid", "string"),
    ("a", "related.user", "~tgt.process.r_user.uid"),
    ("m", "src.process.tid", "~src.process.tid", "long"),
    ("s", "process.thread.id", "~src.process.tid"),
    ("m", "timestamp", "~timestamp", "time"),
    ("m", "dataSource.category", "~data_source.category", ""),
    ("m", "mgmt.id", "~mgmt.id", ""),
    ("m", "mgmt.osRevision", "~mgmt.os_revision", ""),
    ("m", "process.unique.key", "~process_unique_key", ""),
    ("m", "sca:ingestTime", "~sca.ingest_time", "date"),
    (
        "m",
        "src.process.crossProcessDupThreadHandleCount",
        "~src.process.cross_process.dup.thread_handle_count",
        "long",
    ),
    ("m", "src.process.dnsCount", "~src.process.dns_count", "long"),
    (
        "m",
        "src.process.indicatorBootConfigurationUpdateCount",
        "~src.process.indicator.boot_configuration_update_count",
        "long",
    ),
    ("m", "src.process.indicatorEvasionCount", "~src.process.indicator.evasion_count", "long"),
    ("m", "src.process.indicatorGeneralCount", "~src.process.indicator.general_count", "long"),
    ("m", "src.process.indicatorInfostealerCount", "~src.process.indicator.info_stealer_count", "long"),
    ("m", "src.process.indicatorPersistenceCount", "~src.process.indicator.persistence_count", "long"),
    ("m", "src.process.isNative64Bit", "~src.process.is_native_64_bit", "boolean"),
    ("m", "src.process.isRedirectCmdProcessor", "~src.process.is_redirect_cmd_processor", "boolean"),
    ("m", "src.process.netConnCount", "~src.process.net_conn.count", "long"),
    ("m", "src.process.netConnOutCount", "~src.process.net_conn.out_count", "long"),
    ("m", "src.process.parent.subsystem", "~src.process.parent.subsystem", ""),
    ("m", "src.process.registryChangeCount", "~src.process.registry_change_count", "long"),
    ("m", "src.process.sessionId", "~src.process.session_id", "string"),
    ("m", "src.process.signedStatus", "~src.process.signed_status", ""),
    ("h", "signed"),
    ("m", "src.process.tgtFileDeletionCount", "~src.process.tgt_file.deletion_count", "long"),
    ("m", "src.process.tgtFileModificationCount", "~src.process.tgt_file.modification_count", "long"),
    ("m", "src.process.uid", "~src.process.uid", ""),
    ("s", "process.entity_id", "~src.process.uid"),
    ("m", "packet.id", "~packet_id", ""),
    ("m", "trace.id", "~trace_id", ""),
    ("m", "src.process.crossProcessCount", "~src.process.cross_process.count", "long"),
    (
        "m",
        "src.process.crossProcessOutOfStorylineCount",
        "~src.process.cross_process.out_of_storyline_count",
        "long",
    ),
    (
        "m",
        "src.process.crossProcessThreadCreateCount",
        "~src.process.cross_process.thread_create_count",
        "long",
    ),
    ("m", "src.process.image.binaryIsExecutable", "~src.process.image.binary_is_executable", "boolean"),
    (
        "m",
        "src.process.indicatorPostExploitationCount",
        "~src.process.indicator.post_exploitation_count",
        "long",
    ),
    ("m", "src.process.isStorylineRoot", "~src.process.is_storyline_root", "boolean"),
    ("m", "src.process.publisher", "~src.process.publisher", ""),
    ("s", "process.code_signature.subject_name", "~src.process.publisher"),
    ("m", "src.process.verifiedStatus", "~src.process.verified_status", ""),
    ("h", "trusted"),
    ("m", "driver.certificate.thumbprint", "~driver.certificate.thumbprint.value", ""),
    ("m", "driver.certificate.thumbprintAlgorithm", "~driver.certificate.thumbprint.algorithm", "long"),
    ("m", "driver.isLoadedBeforeMonitor", "~driver.is_loaded_before_monitor", "boolean"),
    ("m", "driver.loadVerdict", "~driver.load_verdict", ""),
    ("m", "driver.peSha1", "~driver.pe.sha1", ""),
    ("a", "related.hash", "~driver.pe.sha1"),
    ("m", "driver.peSha256", "~driver.pe.sha256", ""),
    ("a", "related.hash", "~driver.pe.sha256"),
    ("m", "driver.startType", "~driver.start_type", ""),
    ("m", "event.dns.status", "~dns.status", ""),
    ("m", "event.login.tgt.userSid", "~login.tgt.user.sid", ""),
    ("a", "related.user", "~login.tgt.user.sid"),
    ("m", "event.logout.tgt.userSid", "~logout.tgt.user.sid", ""),
    ("a", "related.user", "~logout.tgt.user.sid"),
    ("m", "event.logout.type", "~logout.type", ""),
    ("m", "event.processtermination.exitCode", "~process_termination.exit_code", "long"),
    ("m", "event.processtermination.signal", "~process_termination.signal", ""),
    ("m", "event.url.source", "~url.source", ""),
    ("m", "group.type", "~group.type", ""),
    ("m", "indicator.identifier", "~indicator.identifier", ""),
    ("m", "namedPipe.accessMode", "~named_pipe.access_mode", ""),
    ("m", "namedPipe.connectionType", "~named_pipe.connection_type", ""),
    ("m", "namedPipe.isFirstInstance", "~named_pipe.is_first_instance", "boolean"),
    ("m", "namedPipe.isOverlapped", "~named_pipe.is_overlapped", "boolean"),
    ("m", "namedPipe.isWriteThrough", "~named_pipe.is_write_through", "boolean"),
    ("m", "namedPipe.maxInstances", "~named_pipe.max_instances", "long"),
    ("m", "namedPipe.name", "~named_pipe.name", ""),
    ("m", "namedPipe.readMode", "~named_pipe.read_mode", ""),
    ("m", "namedPipe.remoteClients", "~named_pipe.remote_clients", ""),
    ("m", "namedPipe.securityGroups", "~named_pipe.security.groups", ""),
    ("m", "namedPipe.securityOwner", "~named_pipe.security.owner", ""),
    ("m", "namedPipe.typeMode", "~named_pipe.type_mode", ""),
    ("m", "namedPipe.waitMode", "~named_pipe.wait_mode", ""),
    ("m", "osSrc.process.image.extension", "~os_src_process.image.extension", ""),
    ("m", "osSrc.process.image.location", "~os_src_process.image.location", ""),
    ("m", "osSrc.process.image.signature.isValid", "~os_src_process.image.signature_is_valid", "boolean"),
    ("m", "osSrc.process.image.size", "~os_src_process.image.size", "long"),
    ("m", "osSrc.process.image.type", "~os_src_process.image.type", ""),
    ("m", "osSrc.process.image.uid", "~os_src_process.image.uid", ""),
    (
        "m",
        "osSrc.process.parent.image.binaryIsExecutable",
        "~os_src_process.parent.image.binary_is_executable",
        "boolean",
    ),
    ("m", "osSrc.process.parent.image.extension", "~os_src_process.parent.image.extension", ""),
    ("m", "osSrc.process.parent.image.location", "~os_src_process.parent.image.location", ""),
    (
        "m",
        "osSrc.process.parent.image.signature.isValid",
        "~os_src_process.parent.image.signature_is_valid",
        "boolean",
    ),
    ("m", "osSrc.process.parent.image.size", "~os_src_process.parent.image.size", "long"),
    ("m", "osSrc.process.parent.image.type", "~os_src_process.parent.image.type", ""),
    ("m", "osSrc.process.parent.image.uid", "~os_src_process.parent.image.uid", ""),
    ("m", "osSrc.process.parent.subsystem", "~os_src_process.parent.subsystem", ""),
    ("m", "osSrc.process.parent.userSid", "~os_src_process.parent.user.sid", ""),
    ("a", "related.user", "~os_src_process.parent.user.sid"),
    ("m", "osSrc.process.userSid", "~os_src_process.user.sid", ""),
    ("a", "related.user", "~os_src_process.user.sid"),
    ("m", "registry.export.path", "~registry.export_path", ""),
    ("m", "registry.import.path", "~registry.import_path", ""),
    ("m", "registry.owner.user", "~registry.owner.user.name", ""),
    ("a", "related.user", "~registry.owner.user.name"),
    ("m", "registry.owner.userSid", "~registry.owner.user.sid", ""),
    ("a", "related.user", "~registry.owner.user.sid"),
    ("m", "registry.security.info", "~registry.security_info", "long"),
    ("m", "src.process.exeModificationCount", "~src.process.exe_modification_count", "long"),
    ("m", "src.process.image.description", "~src.process.image.description", ""),
    ("m", "src.process.image.extension", "~src.process.image.extension", ""),
    ("m", "src.process.image.internalName", "~src.process.image.internal_name", ""),
    ("m", "src.process.image.location", "~src.process.image.location", ""),
    ("m", "src.process.image.originalFileName", "~src.process.image.original_file_name", ""),
    ("m", "src.process.image.productName", "~src.process.image.product.name", ""),
    ("m", "src.process.image.productVersion", "~src.process.image.product.version", ""),
    ("m", "src.process.image.size", "~src.process.image.size", "long"),
    ("m", "src.process.image.type", "~src.process.image.type", ""),
    ("m", "src.process.image.uid", "~src.process.image.uid", ""),
    ("m", "src.process.modelChildProcessCount", "~src.process.model_child_process_count", "long"),
    (
        "m",
        "src.process.parent.image.binaryIsExecutable",
        "~src.process.parent.image.binary_is_executable",
        "boolean",
    ),
    ("m", "src.process.parent.image.extension", "~src.process.parent.image.extension", ""),
    ("m", "src.process.parent.image.location", "~src.process.parent.image.location", ""),
    (
        "m",
        "src.process.parent.image.signature.isValid",
        "~src.process.parent.image.signature_is_valid",
        "boolean",
    ),
    ("m", "src.process.parent.image.size", "~src.process.parent.image.size", "long"),
    ("m", "src.process.parent.image.type", "~src.process.parent.image.type", ""),
    ("m", "src.process.parent.image.uid", "~src.process.parent.image.uid", ""),
    ("m", "src.process.userSid", "~src.process.user.sid", ""),
    ("a", "related.user", "~src.process.user.sid"),
    ("m", "task.triggerType", "~task.trigger_type", "long"),
    ("m", "tgt.file.isDirectory", "~tgt.file.is_directory", "boolean"),
    ("m", "tgt.file.isKernelModule", "~tgt.file.is_kernel_module", "boolean"),
    ("m", "tgt.file.originalFileName", "~tgt.file.original_file_name", ""),
    ("m", "tgt.file.owner.name", "~tgt.file.owner.name", ""),
    ("m", "tgt.file.owner.userSid", "~tgt.file.owner.user_sid", ""),
    ("a", "related.user", "~tgt.file.owner.user_sid"),
    ("m", "tgt.file.productName", "~tgt.file.product.name", ""),
    ("m", "tgt.file.productVersion", "~tgt.file.product.version", ""),
    ("m", "tgt.file.publisher", "~tgt.file.publisher", ""),
    ("m", "tgt.file.signature.isValid", "~tgt.file.signature.is_valid", "boolean"),
    ("m", "tgt.file.signatureInvalidReason", "~tgt.file.signature.invalid_reason", ""),
    ("m", "tgt.process.completeness.hints", "~tgt.process.completeness_hints", "long"),
    ("m", "tgt.process.image.extension", "~tgt.process.image.extension", ""),
    ("m", "tgt.process.image.size", "~tgt.process.image.size", "long"),
    ("m", "tgt.process.image.uid", "~tgt.process.image.uid", ""),
    ("m", "tgt.process.parent.image.location", "~tgt.process.parent.image.location", ""),
    ("m", "tgt.process.parent.image.type", "~tgt.process.parent.image.type", ""),
    ("m", "tgt.process.userSid", "~tgt.process.user.sid", ""),
    ("m", "tgt.process.uid", "~tgt.process.uid", ""),
    ("a", "related.user", "~tgt.process.user.sid"),
    ("m", "tiIndicator.categories", "~ti_indicator.categories", ""),
    ("m", "tiIndicator.creationTime", "~ti_indicator.creation_time", "date"),
    ("m", "tiIndicator.externalId", "~ti_indicator.external_id", ""),
    ("m", "tiIndicator.intrusionSets", "~ti_indicator.intrusion_sets", ""),
    ("m", "tiIndicator.metadata", "~ti_indicator.metadata", ""),
    ("m", "tiIndicator.threatActors", "~ti_indicator.threat_actors", ""),
    ("h", "subpipelines"),
    ("h", "args"),
]

# pipeline-file.yml, in order.
_FILE: list[tuple] = [
    ("h", "file_event"),
    ("m", "k8sCluster.containerId", "~k8s_cluster.container.id", ""),
    ("s", "container.id", "~k8s_cluster.container.id"),
    ("m", "k8sCluster.containerImage.sha256", "~k8s_cluster.container.image.sha256", ""),
    ("a", "container.image.hash.all", "~k8s_cluster.container.image.sha256"),
    ("a", "related.hash", "~k8s_cluster.container.image.sha256"),
    ("m", "k8sCluster.containerImage.value", "~k8s_cluster.container.image.value", ""),
    ("s", "container.image.name", "~k8s_cluster.container.image.value"),
    ("m", "k8sCluster.containerLabels", "~k8s_cluster.container.labels", ""),
    ("s", "container.labels", "~k8s_cluster.container.labels"),
    ("m", "k8sCluster.containerName", "~k8s_cluster.container.name", ""),
    ("s", "container.name", "~k8s_cluster.container.name"),
    ("m", "tgt.file.creationTime", "~tgt.file.creation_time", "date"),
    ("s", "file.created", "~tgt.file.creation_time"),
    ("m", "tgt.file.extension", "~tgt.file.extension", ""),
    ("s", "file.extension", "~tgt.file.extension"),
    ("m", "tgt.file.md5", "~tgt.file.md5", ""),
    ("s", "file.hash.md5", "~tgt.file.md5"),
    ("a", "related.hash", "file.hash.md5"),
    ("m", "tgt.file.sha1", "~tgt.file.sha1", ""),
    ("s", "file.hash.sha1", "~tgt.file.sha1"),
    ("a", "related.hash", "file.hash.sha1"),
    ("m", "tgt.file.sha256", "~tgt.file.sha256", ""),
    ("s", "file.hash.sha256", "~tgt.file.sha256"),
    ("a", "related.hash", "file.hash.sha256"),
    ("m", "tgt.file.modificationTime", "~tgt.file.modification_time", "date"),
    ("s", "file.mtime", "~tgt.file.modification_time"),
    ("m", "tgt.file.path", "~tgt.file.path", ""),
    ("s", "file.path", "~tgt.file.path"),
    ("m", "tgt.file.type", "~tgt.file.type", ""),
    ("s", "file.type", "~tgt.file.type"),
    ("h", "file_path"),
    ("m", "tgt.file.size", "~tgt.file.size", "long"),
    ("s", "file.size", "~tgt.file.size"),
    ("m", "src.process.tid", "~src.process.tid", "long"),
    ("s", "process.thread.id", "~src.process.tid"),
    ("m", "tgt.file.oldMd5", "~tgt.file.old.md5", ""),
    ("a", "related.hash", "~tgt.file.old.md5"),
    ("m", "tgt.file.oldPath", "~tgt.file.old.path", ""),
    ("m", "tgt.file.oldSha1", "~tgt.file.old.sha1", ""),
    ("a", "related.hash", "~tgt.file.old.sha1"),
    ("m", "tgt.file.oldSha256", "~tgt.file.old.sha256", ""),
    ("a", "related.hash", "~tgt.file.old.sha256"),
    ("m", "k8sCluster.controllerLabels", "~k8s_cluster.controller.labels", ""),
    ("m", "k8sCluster.controllerName", "~k8s_cluster.controller.name", ""),
    ("m", "k8sCluster.controllerType", "~k8s_cluster.controller.type", ""),
    ("m", "k8sCluster.name", "~k8s_cluster.name", ""),
    ("m", "k8sCluster.namespace", "~k8s_cluster.namespace.value", ""),
    ("m", "k8sCluster.namespaceLabels", "~k8s_cluster.namespace.labels", ""),
    ("m", "k8sCluster.nodeName", "~k8s_cluster.node_name", ""),
    ("m", "k8sCluster.podLabels", "~k8s_cluster.pod.labels", ""),
    ("m", "k8sCluster.podName", "~k8s_cluster.pod.name", ""),
    ("m", "src.process.reasonSignatureInvalid", "~src.process.reason_signature_invalid", ""),
    ("m", "src.process.rpid", "~src.process.rpid", "string"),
    ("m", "task.path", "~task.path", ""),
    ("m", "tgt.file.convictedBy", "~tgt.file.convicted_by", ""),
    ("m", "tgt.file.description", "~tgt.file.description", ""),
    ("m", "tgt.file.id", "~tgt.file.id", ""),
    ("m", "tgt.file.internalName", "~tgt.file.internal_name", ""),
    ("m", "tgt.file.isExecutable", "~tgt.file.is_executable", "boolean"),
    ("m", "tgt.file.location", "~tgt.file.location", ""),
]

_K8S_CONTAINER: list[tuple] = [
    ("m", "k8sCluster.containerId", "~k8s_cluster.container.id", ""),
    ("s", "container.id", "~k8s_cluster.container.id"),
    ("m", "k8sCluster.containerImage.sha256", "~k8s_cluster.container.image.sha256", ""),
    ("a", "container.image.hash.all", "~k8s_cluster.container.image.sha256"),
    ("a", "related.hash", "~k8s_cluster.container.image.sha256"),
    ("m", "k8sCluster.containerImage.value", "~k8s_cluster.container.image.value", ""),
    ("s", "container.image.name", "~k8s_cluster.container.image.value"),
    ("m", "k8sCluster.containerLabels", "~k8s_cluster.container.labels", ""),
    ("s", "container.labels", "~k8s_cluster.container.labels"),
    ("m", "k8sCluster.containerName", "~k8s_cluster.container.name", ""),
    ("s", "container.name", "~k8s_cluster.container.name"),
]
_K8S_OTHER: list[tuple] = [
    ("m", "k8sCluster.controllerLabels", "~k8s_cluster.controller.labels", ""),
    ("m", "k8sCluster.controllerName", "~k8s_cluster.controller.name", ""),
    ("m", "k8sCluster.controllerType", "~k8s_cluster.controller.type", ""),
    ("m", "k8sCluster.name", "~k8s_cluster.name", ""),
    ("m", "k8sCluster.namespace", "~k8s_cluster.namespace.value", ""),
    ("m", "k8sCluster.namespaceLabels", "~k8s_cluster.namespace.labels", ""),
    ("m", "k8sCluster.nodeName", "~k8s_cluster.node_name", ""),
    ("m", "k8sCluster.podLabels", "~k8s_cluster.pod.labels", ""),
    ("m", "k8sCluster.podName", "~k8s_cluster.pod.name", ""),
]


def _tgt_process(*, pid: bool) -> list[tuple]:
    """The ``tgt.process.*`` block shared by the process and cross-process pipelines."""
    steps: list[tuple] = [
        ("m", "tgt.process.accessRights", "~tgt.process.access_rights", "long"),
        ("m", "tgt.process.activeContent.hash", "~tgt.process.active_content.hash", ""),
        ("m", "tgt.process.activeContent.id", "~tgt.process.active_content.id", ""),
        ("m", "tgt.process.activeContent.path", "~tgt.process.active_content.path", ""),
        ("m", "tgt.process.activeContent.signedStatus", "~tgt.process.active_content.signed_status", ""),
        ("m", "tgt.process.activeContentType", "~tgt.process.active_content.type", ""),
        ("m", "tgt.process.cmdline", "~tgt.process.cmd_line", ""),
        ("m", "tgt.process.displayName", "~tgt.process.display_name", ""),
        ("m", "tgt.process.image.binaryIsExecutable", "~tgt.process.image.binary_is_executable", "boolean"),
        ("m", "tgt.process.image.md5", "~tgt.process.image.md5", ""),
        ("a", "related.hash", "~tgt.process.image.md5"),
        ("m", "tgt.process.image.path", "~tgt.process.image.path", ""),
        ("m", "tgt.process.image.sha1", "~tgt.process.image.sha1", ""),
        ("a", "related.hash", "~tgt.process.image.sha1"),
        ("m", "tgt.process.image.sha256", "~tgt.process.image.sha256", ""),
        ("a", "related.hash", "~tgt.process.image.sha256"),
        ("m", "tgt.process.integrityLevel", "~tgt.process.integrity_level", ""),
        ("m", "tgt.process.isNative64Bit", "~tgt.process.is_native_64_bit", "boolean"),
        ("m", "tgt.process.isRedirectCmdProcessor", "~tgt.process.is_redirect_cmd_processor", "boolean"),
        ("m", "tgt.process.isStorylineRoot", "~tgt.process.is_storyline_root", "boolean"),
    ]
    if pid:
        steps += [
            ("m", "tgt.process.name", "~tgt.process.name", ""),
            ("m", "tgt.process.pid", "~tgt.process.pid", "string"),
            ("m", "tgt.process.publisher", "~tgt.process.publisher", ""),
        ]
    else:
        steps += [
            ("m", "tgt.process.lUserName", "~tgt.process.l_user.name", ""),
            ("a", "related.user", "~tgt.process.l_user.name"),
            ("m", "tgt.process.name", "~tgt.process.name", ""),
            ("m", "tgt.process.publisher", "~tgt.process.publisher", ""),
            ("s", "process.code_signature.subject_name", "~tgt.process.publisher"),
        ]
    steps += [
        ("m", "tgt.process.reasonSignatureInvalid", "~tgt.process.reason_signature_invalid", ""),
        ("m", "tgt.process.sessionId", "~tgt.process.session_id", "string"),
        ("m", "tgt.process.signedStatus", "~tgt.process.signed_status", ""),
    ]
    if not pid:
        steps.append(("h", "tgt_signed"))
    steps += [
        ("m", "tgt.process.startTime", "~tgt.process.start_time", "date"),
        ("m", "tgt.process.storyline.id", "~tgt.process.storyline_id", ""),
        ("m", "tgt.process.subsystem", "~tgt.process.subsystem", ""),
        ("m", "tgt.process.uid", "~tgt.process.uid", ""),
    ]
    return steps


_PROCESS: list[tuple] = [
    ("h", "process_event"),
    *_K8S_CONTAINER,
    ("m", "tgt.file.sha1", "~tgt.file.sha1", ""),
    ("s", "file.hash.sha1", "~tgt.file.sha1"),
    ("a", "related.hash", "file.hash.sha1"),
    ("m", "tgt.process.user", "~tgt.process.user.name", ""),
    ("a", "related.user", "~tgt.process.user.name"),
    *_K8S_OTHER,
    ("m", "src.process.reasonSignatureInvalid", "~src.process.reason_signature_invalid", ""),
    ("m", "src.process.rpid", "~src.process.rpid", "string"),
    ("m", "tgt.file.convictedBy", "~tgt.file.convicted_by", ""),
    *_tgt_process(pid=False),
    ("m", "tgt.process.verifiedStatus", "~tgt.process.verified_status", ""),
    ("h", "tgt_trusted"),
    ("h", "process_to_parent"),
    ("a", "process.user.name", "~tgt.process.user.name"),
    ("s", "process.name", "~tgt.process.name"),
    ("s", "process.executable", "~tgt.process.image.path"),
    ("c", "process.pid", "~tgt.process.pid", "long"),
    ("s", "process.thread.id", "~tgt.process.tid"),
    ("s", "process.entity_id", "~tgt.process.uid"),
    ("s", "process.command_line", "~tgt.process.cmd_line"),
    ("s", "process.hash.md5", "~tgt.process.image.md5"),
    ("s", "process.hash.sha1", "~tgt.process.image.sha1"),
    ("s", "process.hash.sha256", "~tgt.process.image.sha256"),
    ("s", "process.real_user.id", "~tgt.process.r_user.uid"),
    ("s", "process.real_user.name", "~tgt.process.r_user.name"),
    ("s", "process.start", "~tgt.process.start_time"),
    ("s", "process.title", "~tgt.process.display_name"),
    ("s", "process.user.id", "~tgt.process.e_user.uid"),
    ("s", "process.user.name", "~tgt.process.user.name"),
]

_CROSS_PROCESS: list[tuple] = [
    ("h", "process_info"),
    ("m", "k8sCluster.containerImage.sha256", "~k8s_cluster.container.image.sha256", ""),
    ("a", "container.image.hash.all", "~k8s_cluster.container.image.sha256"),
    ("a", "related.hash", "~k8s_cluster.container.image.sha256"),
    ("m", "tgt.process.relation", "~tgt.process.relation", ""),
    *_tgt_process(pid=True),
    ("m", "tgt.process.user", "~tgt.process.user.name", ""),
    ("a", "process.user.name", "~tgt.process.user.name"),
    ("a", "related.user", "~tgt.process.user.name"),
    ("m", "tgt.process.verifiedStatus", "~tgt.process.verified_status", ""),
]

_NETWORK: list[tuple] = [
    ("h", "network_event"),
    *_K8S_CONTAINER,
    ("m", "dst.ip.address", "~dst.ip_address", "ip"),
    ("a", "related.ip", "~dst.ip_address"),
    ("s", "destination.ip", "~dst.ip_address"),
    ("s", "destination.address", "~dst.ip_address"),
    ("m", "dst.port.number", "~dst.port_number", "long"),
    ("s", "destination.port", "~dst.port_number"),
    ("m", "event.network.connectionStatus", "~network.connection_status", ""),
    ("h", "network_outcome"),
    ("m", "event.network.direction", "~network.direction", ""),
    ("h", "network_direction"),
    ("m", "event.network.protocolName", "~network.protocol_name", ""),
    ("h", "network_protocol"),
    ("m", "src.ip.address", "~src.ip_address", "ip"),
    # The pipeline tests ``src.ip.address`` here, a field it never writes.
    ("a", "related.ip", "~src.ip_address", "~src.ip.address"),
    ("s", "source.ip", "~src.ip_address"),
    ("m", "src.port.number", "~src.port_number", "long"),
    ("s", "source.port", "~src.port_number"),
    *_K8S_OTHER,
    ("h", "network_type"),
]

_DNS: list[tuple] = [
    ("h", "dns_event"),
    ("m", "event.dns.request", "~dns.request", ""),
    ("m", "event.dns.response", "~dns.response", ""),
    ("h", "dns_parse"),
]

_STORYLINE: list[tuple] = [
    ("m", "src.process.parent.isStoryline\u2122Root", "~src.process.parent.is_storyline_tm_root", "boolean"),
    ("m", "src.process.parent.Storyline\u2122.id", "~src.process.parent.storyline_tm_id", ""),
    ("m", "src.process.Storyline\u2122.id", "~src.process.storyline_tm_id", ""),
]

_COMMAND_SCRIPT: list[tuple] = [
    ("h", "process_info"),
    ("m", "tgt.file.sha1", "~tgt.file.sha1", ""),
    ("s", "file.hash.sha1", "~tgt.file.sha1"),
    ("a", "related.hash", "file.hash.sha1"),
    ("m", "cmdScript.applicationName", "~cmd_script.application_name", ""),
    ("m", "cmdScript.content", "~cmd_script.content", ""),
    ("s", "powershell.file.script_block_text", "~cmd_script.content"),
    ("m", "cmdScript.isComplete", "~cmd_script.is_complete", "boolean"),
    ("m", "cmdScript.originalSize", "~cmd_script.original_size", "long"),
    ("m", "cmdScript.sha256", "~cmd_script.sha256", ""),
    ("a", "related.hash", "~cmd_script.sha256"),
    (
        "m",
        "src.process.crossProcessOutOfStoryline\u2122Count",
        "~src.process.cross_process.out_of_storyline_count",
        "long",
    ),
    ("m", "src.process.isStoryline\u2122Root", "~src.process.is_storyline_tm_root", ""),
    *_STORYLINE,
]

_INDICATOR: list[tuple] = [
    ("m", "src.process.tid", "~src.process.tid", "long"),
    ("s", "process.thread.id", "~src.process.tid"),
    ("m", "indicator.category", "~indicator.category", ""),
    ("m", "indicator.description", "~indicator.description", ""),
    ("m", "indicator.metadata", "~indicator.metadata", ""),
    ("m", "indicator.name", "~indicator.name", ""),
    ("m", "src.process.isStoryline\u2122Root", "~src.process.is_storyline_tm_root", "boolean"),
    *_STORYLINE,
]

_LOGIN: list[tuple] = [
    ("h", "login_event"),
    ("m", "event.login.userName", "~login.user_name", ""),
    ("s", "user.name", "~login.user_name"),
    ("a", "related.user", "user.name"),
    ("m", "src.endpoint.ip.address", "~src.endpoint_ip_address", "ip"),
    ("a", "related.ip", "~src.endpoint_ip_address"),
    ("a", "host.ip", "~src.endpoint_ip_address"),
    ("a", "related.hosts", "~src.endpoint_ip_address"),
    ("m", "event.login.accountDomain", "~login.account.domain", ""),
    ("m", "event.login.accountName", "~login.account.name", ""),
    ("m", "event.login.accountSid", "~login.account.sid", ""),
    ("m", "event.login.baseType", "~login.base_type", ""),
    ("m", "event.login.failureReason", "~login.failure_reason", ""),
    ("m", "event.login.isAdministratorEquivalent", "~login.is_administrator_equivalent", "boolean"),
    ("m", "event.login.loginIsSuccessful", "~login.is_successful", "boolean"),
    ("m", "event.login.sessionId", "~login.session_id", "string"),
    ("m", "event.login.type", "~login.type", ""),
]

_MODULE: list[tuple] = [
    ("m", "module.md5", "~module.md5", ""),
    ("a", "related.hash", "~module.md5"),
    ("m", "module.path", "~module.path", ""),
    ("m", "module.sha1", "~module.sha1", ""),
    ("a", "related.hash", "~module.sha1"),
]

_REGISTRY: list[tuple] = [
    ("h", "registry_event"),
    ("m", "registry.keyPath", "~registry.key.path", ""),
    ("s", "registry.path", "~registry.key.path"),
    ("h", "registry_split"),
    ("m", "registry.value", "~registry.val", ""),
    ("s", "registry.data.strings", "~registry.val"),
    ("m", "registry.valueType", "~registry.value.type", ""),
    ("s", "registry.data.type", "~registry.value.type"),
    ("m", "registry.keyUid", "~registry.key.uid", ""),
    ("m", "registry.oldValue", "~registry.old_value.detail", ""),
    ("m", "registry.oldValueFullSize", "~registry.old_value.full_size", "long"),
    ("m", "registry.oldValueIsComplete", "~registry.old_value.is_complete", "boolean"),
    ("m", "registry.oldValueType", "~registry.old_value.type", ""),
    ("m", "registry.valueFullSize", "~registry.value.full_size", "long"),
    ("m", "registry.valueIsComplete", "~registry.value.is_complete", "boolean"),
]

_SCHEDULED_TASK: list[tuple] = [
    ("m", "tgt.file.creationTime", "~tgt.file.creation_time", "date"),
    ("s", "file.created", "~tgt.file.creation_time"),
    ("m", "tgt.file.extension", "~tgt.file.extension", ""),
    ("s", "file.extension", "~tgt.file.extension"),
    ("m", "tgt.file.md5", "~tgt.file.md5", ""),
    ("s", "file.hash.md5", "~tgt.file.md5"),
    ("a", "related.hash", "file.hash.md5"),
    ("m", "tgt.file.sha1", "~tgt.file.sha1", ""),
    ("s", "file.hash.sha1", "~tgt.file.sha1"),
    ("a", "related.hash", "file.hash.sha1"),
    ("m", "tgt.file.sha256", "~tgt.file.sha256", ""),
    ("s", "file.hash.sha256", "~tgt.file.sha256"),
    ("a", "related.hash", "file.hash.sha256"),
    ("m", "tgt.file.modificationTime", "~tgt.file.modification_time", "date"),
    ("s", "file.mtime", "~tgt.file.modification_time"),
    ("m", "tgt.file.path", "~tgt.file.path", ""),
    ("s", "file.path", "~tgt.file.path"),
    ("m", "tgt.file.size", "~tgt.file.size", "long"),
    ("s", "file.size", "~tgt.file.size"),
    ("m", "tgt.file.type", "~tgt.file.type", ""),
    ("s", "file.type", "~tgt.file.type"),
    ("m", "task.name", "~task.name", ""),
    ("m", "task.path", "~task.path", ""),
    ("m", "tgt.file.description", "~tgt.file.description", ""),
    ("m", "tgt.file.id", "~tgt.file.id", ""),
    ("m", "tgt.file.internalName", "~tgt.file.internal_name", ""),
    ("m", "tgt.file.isExecutable", "~tgt.file.is_executable", "boolean"),
    ("m", "tgt.file.location", "~tgt.file.location", ""),
]

_THREAT_INTEL: list[tuple] = [
    ("h", "threat_event"),
    ("m", "tiIndicator.addedBy", "~ti_indicator.added_by", ""),
    ("m", "tiIndicator.comparisonMethod", "~ti_indicator.comparison_method", ""),
    ("m", "tiIndicator.modificationTime", "~ti_indicator.modification_time", "date"),
    ("m", "tiIndicator.name", "~ti_indicator.name", ""),
    ("m", "tiindicator.originalEvent.id", "~ti_indicator.original_event.id", ""),
    ("m", "tiindicator.originalEvent.index", "~ti_indicator.original_event.index", "long"),
    ("m", "tiindicator.originalEvent.time", "~ti_indicator.original_event.time", "date"),
    ("m", "tiindicator.originalEvent.traceId", "~ti_indicator.original_event.trace_id", ""),
    ("m", "tiIndicator.source", "~ti_indicator.source", ""),
    ("m", "tiIndicator.type", "~ti_indicator.type", ""),
    ("m", "tiIndicator.uid", "~ti_indicator.uid", ""),
    ("m", "tiIndicator.uploadTime", "~ti_indicator.upload_time", "date"),
    ("m", "tiIndicator.validUntil", "~ti_indicator.valid_until", "date"),
    ("m", "tiIndicator.value", "~ti_indicator.value", ""),
]

_URL: list[tuple] = [
    ("m", "url.address", "~url.address", ""),
    ("s", "url.original", "~url.address"),
    ("h", "url_parts"),
    ("s", "destination.address", "url.domain"),
    ("h", "registered_domain"),
    ("m", "event.url.action", "~url.action", ""),
]


# --- document access --------------------------------------------------------


def _path(field: str) -> list[str]:
    return (_CUSTOM + field[1:] if field.startswith("~") else field).split(".")


def _get(doc: dict, field: str) -> Any:
    node: Any = doc
    for part in _path(field):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _put(doc: dict, field: str, value: Any) -> None:
    parts = _path(field)
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _pop(doc: dict, field: str) -> Any:
    parts = _path(field)
    node: Any = doc
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        return node.pop(parts[-1], None)
    return None


def _render(value: Any) -> str:
    """A value as a mustache template ``{{{field}}}`` writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _append(doc: dict, field: str, value: Any) -> None:
    """The ``append`` processor without duplicates: a scalar becomes a list."""
    current = _get(doc, field)
    if current is None:
        _put(doc, field, [value])
        return
    if not isinstance(current, list):
        current = [current]
        _put(doc, field, current)
    if value not in current:
        current.append(value)


def _expand(raw: dict) -> dict:
    """The ``dot_expander`` on every key: ``{"a.b": 1}`` becomes ``{"a": {"b": 1}}``."""
    out: dict = {}
    for key, value in raw.items():
        parts = key.split(".") if isinstance(key, str) else [key]
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {} if child is None else {"": child}
            node = child
        last = parts[-1]
        if isinstance(node.get(last), dict) and isinstance(value, dict):
            node[last].update(value)
        else:
            node[last] = value
    return out


# --- value conversions --------------------------------------------------------


class _Failed(ValueError):
    pass


def _iso(stamp: datetime) -> str:
    stamp = stamp.astimezone(UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


_TIME_OF_DAY = re.compile(r"^(\d{2}):(\d{2}):(\d{2})\.(\d{3})$")


def parse_date(value: Any, *, time_of_day: bool = False, now: datetime | None = None) -> str:
    """The ``date`` processor with formats ISO8601 and epoch_millis (and ``HH:mm:ss.SSS``).

    The result is written as Elasticsearch writes it: UTC, milliseconds, ``Z``.
    A time of day alone takes January 1st of the current year, as Java's
    date parser fills the missing fields.
    """
    if isinstance(value, bool):
        raise _Failed(f"cannot parse date {value!r}")
    if isinstance(value, (int, float)) or (isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip())):
        return _iso(datetime.fromtimestamp(float(value) / 1000, tz=UTC))
    text = str(value).strip()
    match = _TIME_OF_DAY.match(text) if time_of_day else None
    if match:
        year = (now or datetime.now(UTC)).year
        h, m, s, ms = (int(x) for x in match.groups())
        return _iso(datetime(year, 1, 1, h, m, s, ms * 1000, tzinfo=UTC))
    try:
        stamp = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise _Failed(f"cannot parse date {value!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return _iso(stamp)


def _convert(value: Any, kind: str) -> Any:
    """The ``convert`` processor (long, string, boolean, ip)."""
    if isinstance(value, list):
        return [_convert(v, kind) for v in value]
    if kind == "long":
        if isinstance(value, bool):
            raise _Failed(f"unable to convert [{value}] to long")
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            return int(text, 16) if text.lower().startswith("0x") else int(text)
        except ValueError:
            raise _Failed(f"unable to convert [{value}] to long") from None
    if kind == "string":
        return _render(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "false"):
            return text == "true"
        raise _Failed(f"[{value}] is not a boolean value, cannot convert to boolean")
    if kind == "ip":
        text = str(value)
        try:
            ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            raise _Failed(f"'{value}' is not an IP string literal.") from None
        return text
    raise _Failed(f"unknown conversion {kind}")


# --- Windows command-line splitting (process.args) ----------------------------


def split_command_line(line: str) -> list[str]:
    """Arguments of a command line by the Windows ``CommandLineToArgv`` rules.

    Backslashes are literal unless they precede a quote: 2n backslashes and a
    quote give n backslashes and toggle quoting, 2n+1 give n and a literal
    quote; inside quotes a doubled quote is one quote (the pre-2008 rule).
    Empty arguments are dropped. The integration applies this to every OS.
    """
    args: list[str] = []
    i, n = 0, len(line)
    while i < n:
        if line[i] in " \t":
            i += 1
            continue
        buf: list[str] = []
        quoted = False
        slashes = 0
        while i < n:
            c = line[i]
            if c in " \t" and not quoted:
                i += 1
                break
            if c == '"':
                buf.append("\\" * (slashes // 2))
                if slashes % 2 == 0:
                    if quoted and i + 1 < n and line[i + 1] == '"':
                        buf.append('"')
                        i += 1
                    quoted = not quoted
                else:
                    buf.append('"')
                slashes = 0
            elif c == "\\":
                slashes += 1
            else:
                buf.append("\\" * slashes)
                slashes = 0
                buf.append(c)
            i += 1
        buf.append("\\" * slashes)
        arg = "".join(buf)
        if arg:
            args.append(arg)
    return args


# --- steps written as code ------------------------------------------------------


def _etype(doc: dict) -> str:
    value = _get(doc, "~type")
    return value if isinstance(value, str) else ""


def _h_timestamp(doc: dict, ctx: _Run) -> None:
    value = _get(ctx.json, "event.time")
    if value is not None and value != "":
        ctx.guard(lambda: _put(doc, "@timestamp", parse_date(value)), "date")


def _h_host_os_type(doc: dict, ctx: _Run) -> None:
    value = _get(doc, "~endpoint.os")
    if value in _OS_TYPES:
        _put(doc, "host.os.type", value)


def _h_split_user(doc: dict, ctx: _Run) -> None:
    name = _get(doc, "process.user.name")
    if isinstance(name, str) and "\\" in name:
        domain, user = name.split("\\", 1)
        _put(doc, "user.domain", domain)
        _put(doc, "user.name", user)


def _h_signed(doc: dict, ctx: _Run) -> None:
    status = _get(doc, "~src.process.signed_status")
    if status == "signed":
        _put(doc, "process.code_signature.exists", True)
    elif status == "unsigned":
        _put(doc, "process.code_signature.exists", False)


def _h_trusted(doc: dict, ctx: _Run) -> None:
    status = _get(doc, "~src.process.verified_status")
    if isinstance(status, str) and "verified" in status:
        _put(doc, "process.code_signature.trusted", True)
    elif (
        _get(doc, "process.code_signature.exists") is True
        and _get(doc, "process.code_signature.trusted") is None
    ):
        _put(doc, "process.code_signature.trusted", False)


def _h_file_event(doc: dict, ctx: _Run) -> None:
    _put(doc, "event.category", ["file"])
    kind = _etype(doc).lower()
    etype = action = None
    if "creat" in kind:
        etype = action = "creation"
    if "delet" in kind:
        etype = action = "deletion"
    if "change" in kind or "modif" in kind:
        etype = action = "change"
    if "rename" in kind:
        etype, action = "change", "rename"
    _put(doc, "event.type", [etype or "info"])
    if action:
        _put(doc, "event.action", [action])


def _h_file_path(doc: dict, ctx: _Run) -> None:
    path = _get(doc, "~tgt.file.path")
    if not isinstance(path, str) or len(path) <= 1:
        return
    idx = path.rfind("\\")
    if idx == -1:
        idx = path.rfind("/")
    if idx > -1:
        name = path[idx + 1 :]
        _put(doc, "file.name", name)
        _put(doc, "file.directory", path[:idx])
        dot = name.rfind(".")
        if dot > -1 and _get(doc, "file.type") == "file":
            _put(doc, "file.extension", name[dot + 1 :])
    if path.find(":") == 1:
        _put(doc, "file.drive_letter", path[0].upper())


def _h_process_event(doc: dict, ctx: _Run) -> None:
    _put(doc, "event.category", ["process"])
    if _get(doc, "~meta_event_name") == "PROCESSCREATION":
        _put(doc, "event.type", ["start"])
    if _etype(doc) in ("ProcessExit", "ProcessTermination", "Process Exit", "Process Termination"):
        _put(doc, "event.type", ["end"])
    etype = _get(doc, "event.type")
    if etype not in (None, "", []):
        _put(doc, "event.action", copy.deepcopy(etype))


def _h_process_info(doc: dict, ctx: _Run) -> None:
    _put(doc, "event.category", ["process"])
    _put(doc, "event.type", ["info"])


def _h_tgt_signed(doc: dict, ctx: _Run) -> None:
    signed = _get(doc, "~tgt.process.signed_status") == "signed"
    _put(doc, "process.code_signature.exists", signed)


def _h_tgt_trusted(doc: dict, ctx: _Run) -> None:
    verified = _get(doc, "~tgt.process.verified_status") == "verified"
    if verified:
        _put(doc, "process.code_signature.trusted", True)
    elif _get(doc, "process.code_signature.exists") is True:
        _put(doc, "process.code_signature.trusted", False)


def _h_process_to_parent(doc: dict, ctx: _Run) -> None:
    """The source process becomes the parent; ``tgt.process`` becomes ``process``."""
    process = doc.pop("process", None)
    if isinstance(process, dict):
        process.pop("parent", None)
        doc["process"] = {"parent": process}


def _h_network_event(doc: dict, ctx: _Run) -> None:
    _put(doc, "event.category", ["network"])
    if _etype(doc) in ("IPConnect", "IP Connect"):
        _put(doc, "event.type", ["start", "connection"])
        direction = _get(ctx.json, "event.network.direction")
        if direction == "OUTGOING":
            _put(doc, "event.action", ["connection_attempted"])
        elif direction == "INCOMING":
            _put(doc, "event.action", ["connection_accepted"])


def _h_network_outcome(doc: dict, ctx: _Run) -> None:
    status = _get(doc, "~network.connection_status")
    if isinstance(status, str) and status.lower() == "blocked":
        _put(doc, "event.outcome", "unknown")
    if isinstance(status, str) and status != "" and _get(doc, "event.outcome") != "unknown":
        _put(doc, "event.outcome", status.lower())


def _h_network_direction(doc: dict, ctx: _Run) -> None:
    direction = _get(doc, "~network.direction")
    if isinstance(direction, str):
        mapped = {"incoming": "ingress", "outgoing": "egress"}.get(direction.lower())
        if mapped:
            _put(doc, "network.direction", mapped)


def _h_network_protocol(doc: dict, ctx: _Run) -> None:
    protocol = _get(doc, "~network.protocol_name")
    if isinstance(protocol, str) and protocol != "":
        _put(doc, "network.protocol", protocol.lower())


def _h_network_type(doc: dict, ctx: _Run) -> None:
    has_source = _get(doc, "source.ip") is not None or _get(doc, "source.address") is not None
    has_dest = _get(doc, "destination.ip") is not None or _get(doc, "destination.address") is not None
    if (
        has_source
        and has_dest
        and _get(doc, "source.port") is not None
        and _get(doc, "destination.port") is not None
    ):
        _append(doc, "event.type", "connection")
    if _get(doc, "event.type") is None:
        _put(doc, "event.type", ["info"])


def _h_dns_event(doc: dict, ctx: _Run) -> None:
    _put(doc, "event.category", ["network"])
    _put(doc, "event.type", ["info", "protocol"])
    _put(doc, "event.action", ["lookup_requested"])


# DNS resource record type numbers (RFC 1035 and successors), as the
# integration names them.
_DNS_TYPES = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL",
    11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB",
    19: "X25", 20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAPPTR", 24: "SIG", 25: "KEY", 26: "PX",
    27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA",
    35: "NAPTR", 36: "KX", 37: "CERT", 38: "A6", 39: "DNAME", 40: "SINK", 41: "OPT", 43: "DS",
    46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 100: "UINFO", 101: "UID", 102: "GID",
    103: "UNSPEC", 248: "ADDRS", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB",
    254: "MAILA", 255: "ANY", 65281: "WINS", 65282: "WINSR",
}  # fmt: skip
_MAPPED_V4 = re.compile(r"^\[?::ffff:(\d+\.\d+\.\d+\.\d+)(?:\](?::\d+)?)?$")


def _dns_type(code: str) -> str | None:
    return _DNS_TYPES.get(int(code)) if code.isdigit() else None


def _h_dns_parse(doc: dict, ctx: _Run) -> None:
    """``dns.question`` from ``type: N name`` and answers / resolved IPs from the ``;`` list."""
    request = _get(doc, "~dns.request")
    response = _get(doc, "~dns.response")
    if not (isinstance(request, str) and request) and not (isinstance(response, str) and response):
        return
    dns: dict = {}
    hosts: list[str] = []
    if isinstance(request, str) and request:
        parts = re.split(r"\s+", request)
        if len(parts) == 3:
            dns["question"] = {"type": _dns_type(parts[1]), "name": parts[2]}
            hosts.append(parts[2])
        else:
            dns["question"] = {"name": request}
    if isinstance(response, str) and response:
        answers: list[dict] = []
        ips: list[str] = []
        for answer in response.split(";"):
            if answer == "":
                continue
            if answer.startswith("type:"):
                parts = re.split(r"\s+", answer)
                if len(parts) < 2:
                    ctx.error("unexpected event.dns.response format")
                    return
                if len(parts) == 3:
                    answers.append({"type": _dns_type(parts[1]), "data": parts[2]})
                    hosts.append(parts[2])
                else:
                    answers.append({"type": _dns_type(parts[1])})
            else:
                ips.append(answer)
        if answers:
            dns["answers"] = answers
        if ips:
            resolved = []
            for ip in ips:
                ip = _MAPPED_V4.sub(r"\1", ip)
                try:
                    resolved.append(_convert(ip, "ip"))
                except _Failed:
                    continue
            dns["resolved_ip"] = resolved
        if hosts:
            _put(doc, "related.hosts", hosts)
    doc["dns"] = dns


def _h_login_event(doc: dict, ctx: _Run) -> None:
    _put(doc, "event.category", ["authentication"])
    kind = _etype(doc)
    if kind == "Login":
        _put(doc, "event.type", ["start"])
    if kind == "Logout":
        _put(doc, "event.type", ["end"])
    if _get(doc, "event.type") is None:
        _put(doc, "event.type", ["info"])


def _h_registry_event(doc: dict, ctx: _Run) -> None:
    _put(doc, "event.category", ["registry"])
    kind = _etype(doc).lower()
    if not kind:
        return
    if "create" in kind:
        _put(doc, "event.type", ["creation"])
    if "delet" in kind:
        _put(doc, "event.type", ["deletion"])
    if "change" in kind or "modif" in kind:
        _put(doc, "event.type", ["change"])
    name = str(_get(doc, "~meta_event_name") or "").lower()
    if "regvaluecreate" in name or "regkeycreate" in name:
        _put(doc, "event.action", ["creation"])
    if "regvaluemodified" in name:
        _put(doc, "event.action", ["modification"])
    if "regvaluedelete" in name or "regkeydelete" in name:
        _put(doc, "event.action", ["deletion"])


def _h_registry_split(doc: dict, ctx: _Run) -> None:
    path = _get(doc, "registry.path")
    if isinstance(path, str) and path:
        idx = path.rfind("\\")
        if idx >= 0:
            _put(doc, "registry.key", path[:idx])
            _put(doc, "registry.value", path[idx + 1 :])


def _h_threat_event(doc: dict, ctx: _Run) -> None:
    _put(doc, "event.category", ["threat"])
    _put(doc, "event.type", ["indicator"])


def _h_url_parts(doc: dict, ctx: _Run) -> None:
    """The ``uri_parts`` processor on ``url.original``."""
    original = _get(doc, "url.original")
    if not isinstance(original, str):
        return
    try:
        parts = urlsplit(original)
        port = parts.port
    except ValueError as exc:
        ctx.error(f"cannot parse URL: {exc}")
        return
    url: dict[str, Any] = {"original": original}
    if parts.scheme:
        url["scheme"] = parts.scheme
    if parts.hostname:
        url["domain"] = parts.hostname
    if port is not None:
        url["port"] = port
    url["path"] = parts.path
    if parts.query:
        url["query"] = parts.query
    if parts.fragment:
        url["fragment"] = parts.fragment
    if parts.username:
        url["username"] = parts.username
    if parts.password:
        url["password"] = parts.password
    last = parts.path.rsplit("/", 1)[-1]
    if "." in last:
        url["extension"] = last.rsplit(".", 1)[1]
    doc["url"] = url


# Two-label public suffixes common enough to matter for registered domains.
_TWO_LABEL_SUFFIXES = {
    "co.uk",
    "org.uk",
    "ac.uk",
    "gov.uk",
    "com.au",
    "net.au",
    "org.au",
    "co.jp",
    "co.nz",
    "com.br",
}


def _h_registered_domain(doc: dict, ctx: _Run) -> None:
    """``registered_domain``: domain, registered domain, top-level domain and subdomain."""
    address = _get(doc, "destination.address")
    if not isinstance(address, str) or not address or "." not in address:
        return
    try:
        ipaddress.ip_address(address)
        return
    except ValueError:
        pass
    labels = address.split(".")
    suffix_len = 2 if ".".join(labels[-2:]) in _TWO_LABEL_SUFFIXES and len(labels) > 2 else 1
    if len(labels) <= suffix_len:
        return
    suffix = ".".join(labels[-suffix_len:])
    registered = ".".join(labels[-suffix_len - 1 :])
    _put(doc, "destination.domain", address)
    _put(doc, "destination.registered_domain", registered)
    _put(doc, "destination.top_level_domain", suffix)
    sub = ".".join(labels[: -suffix_len - 1])
    if sub:
        _put(doc, "destination.subdomain", sub)


def _h_args(doc: dict, ctx: _Run) -> None:
    for key in ("process", "process.parent"):
        line = _get(doc, f"{key}.command_line")
        if isinstance(line, str) and line != "":
            args = split_command_line(line)
            _put(doc, f"{key}.args", args)
            _put(doc, f"{key}.args_count", len(args))


def _h_subpipelines(doc: dict, ctx: _Run) -> None:
    category = _get(doc, "~category")
    if not isinstance(category, str):
        return
    low = category.lower()
    for applies, steps in _SUBPIPELINES:
        if applies(low):
            ctx.run(doc, steps)


_SUBPIPELINES: list[tuple[Callable[[str], bool], list[tuple]]] = [
    (lambda c: "command" in c, _COMMAND_SCRIPT),
    (lambda c: "cross" in c, _CROSS_PROCESS),
    (lambda c: "dns" in c, _DNS),
    (lambda c: "file" in c, _FILE),
    (lambda c: "indicator" in c and "threat" not in c, _INDICATOR),
    (lambda c: "login" in c, _LOGIN),
    (lambda c: "module" in c, _MODULE),
    (lambda c: "ip" in c and "command" not in c, _NETWORK),
    (lambda c: "process" in c and "cross" not in c, _PROCESS),
    (lambda c: "registry" in c, _REGISTRY),
    (lambda c: "schedule" in c, _SCHEDULED_TASK),
    (lambda c: "threat" in c, _THREAT_INTEL),
    (lambda c: "url" in c, _URL),
]

_HOOKS: dict[str, Callable[[dict, _Run], None]] = {
    name[3:]: fn for name, fn in list(globals().items()) if name.startswith("_h_") and callable(fn)
}


# --- the run ----------------------------------------------------------------------


class _Run:
    """One event through the pipeline: the parsed raw event and the errors met."""

    def __init__(self, json: dict) -> None:
        self.json = json
        self.errors: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)

    def guard(self, fn: Callable[[], None], what: str) -> None:
        try:
            fn()
        except _Failed as exc:
            self.error(f"{what}: {exc}")

    def run(self, doc: dict, steps: Iterable[tuple]) -> None:
        for step in steps:
            op = step[0]
            if op == "m":
                _, raw, target, conv = step
                if conv:
                    value = _get(self.json, raw)
                    if value is None or value == "":
                        continue
                    try:
                        if conv in ("date", "time"):
                            value = parse_date(value, time_of_day=conv == "time")
                        else:
                            value = _convert(value, conv)
                    except _Failed as exc:
                        self.error(f"{raw}: {exc}")
                        continue
                else:
                    value = _pop(self.json, raw)
                    if value is None:
                        continue
                _put(doc, target, value)
            elif op == "s":
                value = _get(doc, step[2])
                if value is not None and value != "":
                    _put(doc, step[1], copy.deepcopy(value))
            elif op == "a":
                value = _get(doc, step[2])
                cond = _get(doc, step[3]) if len(step) > 3 else value
                if value is not None and cond is not None:
                    _append(doc, step[1], _render(value))
            elif op == "c":
                value = _get(doc, step[2])
                if value is not None:
                    try:
                        _put(doc, step[1], _convert(value, step[3]))
                    except _Failed as exc:
                        self.error(f"{step[2]}: {exc}")
            else:
                _HOOKS[step[1]](doc, self)


def _drop_empty(value: Any) -> bool:
    """True when ``value`` is null, an empty string, or a container left empty (pruned in place)."""
    if value is None or value == "":
        return True
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if _drop_empty(v)]:
            del value[key]
        return not value
    if isinstance(value, list):
        value[:] = [v for v in value if not _drop_empty(v)]
        return not value
    return False


def _unescape(line: str) -> str:
    """The pipeline's first step: every run of four backslashes becomes two."""
    return line.replace("\\\\\\\\", "\\\\")


def looks_like(doc: dict) -> bool:
    """True for a Cloud Funnel event: flat, with ``meta.event.name`` or ``src.process.*`` / ``tgt.*`` keys."""
    if "meta.event.name" in doc:
        return True
    try:
        # Every event is asked: one search over the joined keys rules most out, and only
        # a document holding one of the prefixes somewhere is tested key by key.
        keys = "".join(doc)
    except TypeError:  # a key that is not text (a document built in Python)
        keys = None
    if keys is not None and not any(prefix in keys for prefix in _FLAT_PREFIXES):
        return False
    return any(isinstance(k, str) and k.startswith(_FLAT_PREFIXES) for k in doc)


_FLAT_PREFIXES = ("src.process.", "tgt.file.", "tgt.process.")


def normalize(
    raw: dict | str,
    *,
    tags: Iterable[str] = (),
    reroute: Iterable[str] = (),
    now: datetime | None = None,
) -> dict:
    """The ECS document the integration indexes for one raw event.

    ``raw`` is the decoded event or its JSON line (``event.original`` is then
    that line after the pipeline's backslash rule). ``tags`` are the event's
    tags: ``preserve_duplicate_custom_fields`` keeps the custom copies of
    fields mapped to ECS. ``reroute`` lists the categories routed to their own
    data stream (the integration's ``_conf.reroute``).
    """
    if isinstance(raw, str):
        line = _unescape(raw)
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise VigilError(f"not a SentinelOne Cloud Funnel event: invalid JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise VigilError("not a SentinelOne Cloud Funnel event: not a JSON object")
    else:
        parsed = raw
        line = orjson.dumps(raw).decode()
    if not isinstance(parsed.get("meta.event.name"), str) and "event.type" not in parsed:
        raise VigilError("not a SentinelOne Cloud Funnel event: no meta.event.name or event.type")
    tags = list(tags)
    reroute = [r.lower() for r in reroute]
    flat = dict(parsed)
    if "k8sCluster.containerImage" in flat:
        flat["k8sCluster.containerImage.value"] = flat.pop("k8sCluster.containerImage")
    json = _expand(flat)
    for path in ("src.process.parent.cmdline", "tgt.process.cmdline"):
        value = _get(json, path)
        if isinstance(value, str) and len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            _put(json, path, value[1:-1])
        elif value == '"':
            _put(json, path, "")
    doc: dict = {"ecs": {"version": ECS_VERSION}, "event": {"kind": "event", "original": line}}
    if tags:
        doc["tags"] = tags
    ctx = _Run(json)
    ctx.run(doc, _MAIN)
    if "preserve_duplicate_custom_fields" not in tags:
        for field in _DUPLICATES:
            _pop(doc, "~" + field)
    _drop_empty(doc)
    category = _get(doc, "~category")
    if isinstance(category, str) and category.lower() in reroute:
        _put(doc, "~rerouted", True)
    if ctx.errors:
        _put(doc, "event.kind", "pipeline_error")
        _put(doc, "error.message", ctx.errors)
        if "preserve_original_event" not in tags:
            _append(doc, "tags", "preserve_original_event")
    return doc


def index_of(doc: dict) -> str:
    """The index the event lands in: its routed data stream, else the ``event`` one."""
    category = _get(doc, "~category")
    if _get(doc, "~rerouted") is True and isinstance(category, str) and category in ROUTED:
        return f"logs-sentinel_one_cloud_funnel.{category}-default"
    return INDEX


def route(doc: dict) -> str:
    """Apply the routing rules: set ``data_stream.*`` on a rerouted event and return its index."""
    index = index_of(doc)
    if index != INDEX:
        _, dataset, namespace = index.split("-", 2)
        doc["data_stream"] = {"dataset": dataset, "namespace": namespace, "type": "logs"}
    return index
