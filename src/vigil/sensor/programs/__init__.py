# SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only
"""Vigil's eBPF programs (declared to the kernel as "Dual BSD/GPL"; see LICENSE here)."""
