// Emulator shim (tests/cuda_emu/include/hacm_emu.h).
#pragma once
#include "cuda_runtime_api.h"
