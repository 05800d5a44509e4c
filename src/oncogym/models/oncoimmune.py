"""``oncoimmune`` — the composite tumour–immune model (equations: docs/model/equations.md).

de Pillis, Gu & Radunskaya 2006 (J Theor Biol 238:841; patient 9) extended with
immunoediting, antigen presentation, checkpoints, immunosuppression, a humoral
arm, CAR-T cells, clinical pharmacokinetics and toxicity states.  Notation:
T = T⁺ + T⁻; ``drug`` = 1 − e^{−δ·M}; ψ the immunosuppression factor; F the PD-1
factor; κ the CTLA-4 priming factor; η the CD4-help factor; x the CAR antigen
contact; RO receptor occupancies.  One line per mechanism (form — source; "chosen" is a
modelling choice of this project, "unverified" a value not checked against its primary
source; full references in docs/model/references.md):

* lesions: up to four (i = 1…4), each with T⁺_i and T⁻_i, sharing every other state (the
  immune system, drugs); T = Σ_i (T⁺_i + T⁻_i); lesion 1 is (``Tp``, ``Tn``) — chosen form
* tumour growth, shared capacity: a·T⁺_i(1 − b·T), a·f⁻·T⁻_i(1 − b·T) — de Pillis et al.
  2006 (values checked against three implementations); the two-clone split is chosen
  (antigen-escape clone as in León-Triana et al. 2021)
* antigen loss: μ_loss·a·T⁺_i moves T⁺_i → T⁻_i — chosen form; rate unverified
* NK kill of both clones: c·ψ·N·T±_i — de Pillis et al. 2006; ψ from de Pillis et al. 2013
  and Arciero et al. 2004
* CTL kill of T⁺ only: D_i·T⁺_i, D_i = d·F·ψ·r_i^l/(s + r_i^l), r_i = L·infil_i/W,
  W = Σ_j infil_j·T⁺_j (CTLs home to the lesions by infiltration × antigen; with one lesion
  and infil = 1, r = L/T⁺) — de Pillis et al. 2005 and 2006 (ratio-dependent kill); the
  homing to lesions is chosen; the recruitment term uses Σ_i D_i·T⁺_i
* PD-1/PD-L1: F = 1/(1 + Q/K_TQ), Q = pdl1·(1 − ε·RO_pd1), ε < 1 (blockade capped, so the
  effect saturates with occupancy at clinical doses) — Nikolopoulou et al. 2018 (F(Q); BioModels
  MODEL1908270001); the occupancy form and the cap are chosen
* immunosuppression: ψ = e^{−δ_R·R}/(1 + γ_S·S) — de Pillis et al. 2013 (e^{−δR}), Arciero et
  al. 2004 (1/(1 + γS)); values chosen
* CTLA-4: κ = 1 + E_ctla4·RO_ctla4 on priming; Treg depletion k_dep·RO_ctla4·R — chosen
  (CTLA-4 acts at priming and on Tregs; Serre et al. 2016); unverified
* CD4 help: η = h_min + (1 − h_min)·H/(K_H + H) on CTL priming — chosen form
* NK: e·C − f·N + g·ψ·N·T²/(h + T²) − p·N·T − K_N·drug·N — de Pillis et al. 2006
* CTL: −m·L + j·L·(D·T⁺)²/(k + (D·T⁺)²) − q·L·T + ψ·(r1·N + r2·η·κ·C)·T⁺ + a_c·η·κ·ψ·DC
  − u·N·L² − K_L·drug·L + p_I·F·L·I/(g_I + I) − k_RL·R·L — de Pillis et al. 2006; DC
  priming a_c·DC and Treg inactivation k_RL·R·L from Kronik et al. 2010
* lymphocytes, drug, IL-2: α − β·C − K_C·drug·C; −γ·M; −μ_I·I — de Pillis et al. 2006
* dead-cell antigen (ICD) pool: all kills of T⁺ + shed·T⁺ (+ RT: rt_icd × RT-killed T⁺)
  − μ_Ag·Ag — Kosinsky et al. 2018 (dying-cell signal), Rauf et al. 2025 (immunogenic cell
  death); form chosen
* antigen-presenting cells: Dm → DC (α1·k_m) → Dr (k_cr), DC from Ag: σ_DC·Ag/(K_Ag + Ag)
  — Kronik et al. 2010 (BioModels MODEL2001130003); Ag term chosen after Kosinsky et al.
  2018; chemotherapy removes Dm and DC at k_chemo_apc·drug — chosen (0 by default;
  prostate: VIABLE, a DC vaccine given with docetaxel adds no survival)
* helper T cells: a_h·κ·ψ·DC − μ_H·H — chosen
* Tregs: σ_R + a_r·Dr + σ_RS·γ_S·S/(1 + γ_S·S) + p_R·R·I/(g_I + I) − μ_R·R − k_dep·RO·R
  — de Pillis et al. 2013, Kronik et al. 2010 (a_r·Dr); CTLA-4 depletion chosen
* TGF-β/IL-10 (S): p_ST·T/(K_ST + T) + p_SM·M2 − μ_S·S — forms after Arciero et al. 2004
  and Ganguli et al. 2018
* M2 macrophages: σ_M2·T/(K_M2 + T) − μ_M2·M2 — Ganguli et al. 2018 (death rate);
  recruitment chosen
* antibodies (humoral arm): p_Ab·H/(K_H + H)·Ag/(K_Ag + Ag) − μ_Ab·Ab; antibody-dependent
  kill of T⁺ (NK ADCC, macrophage ADCP, complement lumped): k_adcc·ψ·Ab/(K_Ab + Ab)·T⁺
  — chosen
* CAR-T (effector E, memory M): dE = (π·x·λ + φ − ρ − α_ex·x)·E + θ·x·M,
  dM = ε·E − θ·x·M − μ·M, x = T⁺/(g_T + T⁺), λ = (1 + b_LD·space)/(1 + b_LD) with
  space = max(0, 1 − C·β/α) (expansion relative to a fully lymphodepleted host: π is the
  rate after lymphodepletion, 1/(1 + b_LD) of it without; the form and b_LD chosen, b_LD
  calibrated to CAR-T with and without lymphodepletion, Turtle et al. 2016);
  kill of T⁺: γ_B·E/(k_B + E)·T⁺ — CARTmath (Barros et al. 2021; authors' code),
  León-Triana et al. 2021 (BioModels BIOMD0000001013), Kimmel et al. 2021 (paper's Table 1)
* checkpoint antibodies: one compartment, −ln2/t½·A; RO = (A/V)/((A/V) + K_D) — label
  half-lives and volumes, unverified
* chemotherapy: M += dose·BSA/V; kill K_X·(1 − e^{−δ·M}) of T±, N, L, C, H, R, CAR — de
  Pillis et al. 2006 and 2009
* neutrophils: Friberg transit chain, E_drug = slope·M, feedback (ANC0/ANC)^γ — Friberg et
  al. 2002 (values checked against the R package myelo)
* lymphodepletion: log-kill ld_kill per course day of C, N, L, H, R, CAR-T and ld_marrow of
  marrow progenitors (a bolus of n days, or the same log-kill spread over an infusion window)
  — chosen (the ZUMA-1 course: fludarabine 30 + cyclophosphamide 500 mg/m² on days −5…−3,
  Neelapu et al. 2017)
* radiotherapy fraction d, to lesion 1: T±_1 ×= 1 − f_field + f_field·e^{−αd−βd²}
  (f_field: share of lesion 1 inside the field, chosen; the other lesions are outside it);
  C, N, L, H, R, CAR-T ×= e^{−α_L·f_blood·d};
  BED_late += f_tissue·d·(1 + f_tissue·d/3) — linear-quadratic model; values typical,
  unverified
* irAE hazard: k_irae·(RO_pd1 + w·C_ctla4/(C_ctla4 + K_irae4))·κ·(H + L)/(H + L + K_irae):
  PD-1 occupancy (saturated at clinical doses) plus anti-CTLA-4 exposure (not saturated:
  ipilimumab toxicity rises with dose) — chosen
* CRS (IL-6-like): crs_prod·(CAR kill rate) − crs_clear·IL6 — chosen (IL-6 rises with CAR-T
  killing; unverified)
* death: cumulative hazard Hz, dHz/dt = bg + r·(Σ_i lethality_i·T_i / T_ref)^p; the patient
  dies when Hz reaches their unit-exponential threshold — chosen form, calibrated per
  scenario to untreated / best-supportive-care survival

Therapies (clinical units): ``chemo`` (mg/m²), ``il2`` (IU/kg), ``til`` (cells),
``anti_pd1`` (mg), ``anti_ctla4`` (mg/kg), ``vaccine`` (antigen-loaded APCs, cells),
``car_t`` (CAR⁺ cells/kg), ``lymphodepletion`` (course days), ``radiotherapy`` (Gy per
fraction; instantaneous only).

Nested reduction: ``MODEL.parameter_set("depillis2006")`` switches every extension
off and makes the chemo and IL-2 dose conversions 1 (doses in mg/L and IU/L as in
de Pillis); with T⁻(0) = 0 the states T⁺, N, L, C, M, I then follow
``depillis2006`` exactly.
"""

from __future__ import annotations

import math

import numpy as np

from oncogym._jit import jit
from oncogym.models import depillis2006
from oncogym.models.base import Model, Param, State, Therapy

# Kernels shared with other modules (one definition of the de Pillis D term and of LQ).
# Numba's on-disk cache does not see edits to them: clear __pycache__ after changing them.
from oncogym.models.depillis2006 import cd8_kill_fraction
from oncogym.radiotherapy import lq_bed, lq_log_survival
from oncogym.rules import DAYS_PER_YEAR

# --- states -------------------------------------------------------------------------------
(
    TP,
    TN,
    NK,
    CD8,
    LYM,
    DRUG,
    IL2,
    AG,
    DM,
    DC,
    DR,
    TH,
    TREG,
    SUP,
    M2,
    AB,
    CAR_E,
    CAR_M,
    PD1_A,
    CTLA4_A,
    PROL,
    TR1,
    TR2,
    TR3,
    ANC,
    IRAE,
    IL6,
    BED_LATE,
    TP2,
    TN2,
    TP3,
    TN3,
    TP4,
    TN4,
    HZ,
) = range(35)

N_LESIONS = 4
"""Lesion slots: lesion 1 is (``Tp``, ``Tn``), lesion i > 1 is (``Tp{i}``, ``Tn{i}``)."""
LESION_TP = np.array([TP, TP2, TP3, TP4], dtype=np.int64)
"""State index of each lesion's antigen-positive clone."""
LESION_TN = np.array([TN, TN2, TN3, TN4], dtype=np.int64)
"""State index of each lesion's antigen-low clone."""

# --- parameters: de Pillis 2006 (same order as depillis2006) then the extensions -----------
(
    A,
    B,
    CC,
    D,
    LL,
    S,
    E,
    F,
    G,
    H,
    J,
    K,
    MM,
    Q,
    PP,
    R1,
    R2,
    U,
    KT,
    KN,
    KL,
    KC,
    ALPHA,
    BETA,
    GAMMA,
    PI,
    GI,
    MUI,
    MU_LOSS,
    TN_FIT,
    PDL1,
    K_TQ,
    DELTA_R,
    GAMMA_S,
    K_RL,
    CTLA4_EMAX,
    CTLA4_DEP,
    K_M,
    ALPHA1,
    K_CR,
    MU_D,
    A_C,
    A_R,
    SIGMA_DC,
    K_AG,
    MU_AG,
    AG_SHED,
    A_H,
    MU_H,
    K_H,
    H_MIN,
    SIGMA_R,
    SIGMA_RS,
    P_R,
    MU_R,
    P_ST,
    K_ST,
    P_SM,
    MU_S,
    SIGMA_M2,
    K_M2,
    MU_M2,
    P_AB,
    MU_AB,
    K_AB,
    K_ADCC,
    CAR_EXPAND,
    CAR_GT,
    CAR_PHI,
    CAR_RHO,
    CAR_EPS,
    CAR_MU,
    CAR_THETA,
    CAR_EXHAUST,
    CAR_KILL,
    CAR_K,
    CAR_LD_BOOST,
    PD1_THALF,
    PD1_V,
    PD1_KD,
    CTLA4_THALF,
    CTLA4_V,
    CTLA4_KD,
    WEIGHT,
    BSA,
    CHEMO_V,
    CHEMO_DELTA,
    IL2_V,
    LD_KILL,
    LD_MARROW,
    RT_ALPHA,
    RT_AB,
    RT_ALPHA_L,
    RT_BLOOD,
    RT_ICD,
    RT_TISSUE,
    RT_AB_LATE,
    FR_MTT,
    FR_GAMMA,
    ANC0,
    FR_SLOPE,
    _,  # alc_volume_l: read by name where ALC = C / V is graded, not by the RHS
    IRAE_RATE,
    IRAE_W,
    IRAE_K,
    CRS_PROD,
    CRS_CLEAR,
    RT_FIELD,
    K_APC,
    INFIL1,
    INFIL2,
    INFIL3,
    INFIL4,
    LETH1,
    LETH2,
    LETH3,
    LETH4,
    DEATH_RATE,
    DEATH_REF,
    DEATH_POWER,
    DEATH_BG,
    DEATH_THRESHOLD,
    PD1_MAX_BLOCK,
    IRAE_KD_CTLA4,
) = range(124)

LESION_INFIL = np.array([INFIL1, INFIL2, INFIL3, INFIL4], dtype=np.int64)
"""Parameter index of each lesion's CTL infiltration factor."""
LESION_LETHALITY = np.array([LETH1, LETH2, LETH3, LETH4], dtype=np.int64)
"""Parameter index of each lesion's weight in the death hazard."""

# --- therapies ------------------------------------------------------------------------------
(TX_CHEMO, TX_IL2, TX_TIL, TX_PD1, TX_CTLA4, TX_VACCINE, TX_CART, TX_LD, TX_RT) = range(9)

_LN2 = math.log(2.0)
_DAYS_PER_YEAR = DAYS_PER_YEAR


@jit
def _occupancy(amount, volume, kd):
    """Receptor occupancy C/(C + K_D) of an antibody with ``amount`` mg in ``volume`` L."""
    if amount <= 0.0:
        return 0.0
    conc = amount / volume
    return conc / (conc + kd)


@jit
def _saturation(x, half):
    """x/(half + x), 0 for x <= 0 (no 0/0 when ``half`` is 0)."""
    if x <= 0.0:
        return 0.0
    return x / (half + x)


@jit
def rhs(t, y, p, u, dydt):
    lym = y[LYM]
    nk = y[NK]
    cd8 = y[CD8]
    drug_m = y[DRUG]
    il2 = y[IL2]
    th = y[TH]
    treg = y[TREG]
    ce = y[CAR_E]
    cm = y[CAR_M]

    # tumour totals over the lesions; W = Σ infil_i·T⁺_i is the antigen mass the CTLs home to
    tp_sum = 0.0
    tt = 0.0
    w_mass = 0.0
    lethal_mass = 0.0
    for i in range(N_LESIONS):
        tp_i = y[LESION_TP[i]]
        tt_i = tp_i + y[LESION_TN[i]]
        tp_sum += tp_i
        tt += tt_i
        w_mass += p[LESION_INFIL[i]] * tp_i
        lethal_mass += p[LESION_LETHALITY[i]] * tt_i

    # checkpoints, suppression, help
    ro_pd1 = _occupancy(y[PD1_A], p[PD1_V], p[PD1_KD])
    ro_ctla4 = _occupancy(y[CTLA4_A], p[CTLA4_V], p[CTLA4_KD])
    q_pd = p[PDL1] * (1.0 - p[PD1_MAX_BLOCK] * ro_pd1)
    f_pd1 = 1.0 / (1.0 + q_pd / p[K_TQ]) if q_pd > 0.0 else 1.0
    s_act = p[GAMMA_S] * y[SUP]
    psi = math.exp(-p[DELTA_R] * treg) / (1.0 + s_act)
    kappa = 1.0 + p[CTLA4_EMAX] * ro_ctla4
    eta = p[H_MIN] + (1.0 - p[H_MIN]) * _saturation(th, p[K_H])
    drug = -math.expm1(-p[CHEMO_DELTA] * drug_m)  # 1 − e^{−δM}
    ld_rate = p[LD_KILL] * u[TX_LD]

    # per-lesion kills; lesion i's CTLs L·infil_i·T⁺_i/W give the effector ratio L·infil_i/W
    d_eff = p[D] * f_pd1 * psi
    nk_rate = p[CC] * psi * nk
    chemo_t = p[KT] * drug
    car_rate = p[CAR_KILL] * _saturation(ce, p[CAR_K])
    adcc_rate = p[K_ADCC] * psi * _saturation(y[AB], p[K_AB])
    growth = p[A] * (1.0 - p[B] * tt)
    loss = p[MU_LOSS] * p[A]
    growth_n = p[TN_FIT] * growth
    ctl_kill = 0.0
    car_kill = 0.0
    kill_p = 0.0
    for i in range(N_LESIONS):
        tp_i = y[LESION_TP[i]]
        tn_i = y[LESION_TN[i]]
        ctl_i = cd8_kill_fraction(d_eff, p[LL], p[S], cd8 * p[LESION_INFIL[i]], w_mass) * tp_i
        car_i = car_rate * tp_i
        kill_i = nk_rate * tp_i + ctl_i + chemo_t * tp_i + car_i + adcc_rate * tp_i
        ctl_kill += ctl_i
        car_kill += car_i
        kill_p += kill_i
        dydt[LESION_TP[i]] = growth * tp_i - loss * tp_i - kill_i
        dydt[LESION_TN[i]] = growth_n * tn_i + loss * tp_i - nk_rate * tn_i - chemo_t * tn_i

    dydt[NK] = (
        p[E] * lym
        - p[F] * nk
        + p[G] * psi * nk * tt * tt / (p[H] + tt * tt)
        - p[PP] * nk * tt
        - p[KN] * drug * nk
        - ld_rate * nk
    )
    priming = kappa * eta * psi
    dydt[CD8] = (
        -p[MM] * cd8
        + p[J] * cd8 * ctl_kill * ctl_kill / (p[K] + ctl_kill * ctl_kill)
        - p[Q] * cd8 * tt
        + (p[R1] * psi * nk + p[R2] * priming * lym) * tp_sum
        + p[A_C] * priming * y[DC]
        - p[U] * nk * cd8 * cd8
        - p[KL] * drug * cd8
        + p[PI] * f_pd1 * cd8 * il2 / (p[GI] + il2)
        - p[K_RL] * treg * cd8
        - ld_rate * cd8
        + u[TX_TIL]
    )
    dydt[LYM] = p[ALPHA] - p[BETA] * lym - p[KC] * drug * lym - ld_rate * lym
    dydt[DRUG] = -p[GAMMA] * drug_m + u[TX_CHEMO] * p[BSA] / p[CHEMO_V]
    dydt[IL2] = -p[MUI] * il2 + u[TX_IL2] * p[WEIGHT] / p[IL2_V]

    # antigen presentation (Kronik 2010) and help
    ag_sat = _saturation(y[AG], p[K_AG])
    dydt[AG] = kill_p + p[AG_SHED] * tp_sum - p[MU_AG] * y[AG]
    apc_loss = p[K_APC] * drug
    dydt[DM] = -(p[K_M] + apc_loss) * y[DM] + u[TX_VACCINE]
    dydt[DC] = p[ALPHA1] * p[K_M] * y[DM] + p[SIGMA_DC] * ag_sat - (p[K_CR] + apc_loss) * y[DC]
    dydt[DR] = p[K_CR] * y[DC] - p[MU_D] * y[DR]
    dydt[TH] = p[A_H] * kappa * psi * y[DC] - p[MU_H] * th - p[KL] * drug * th - ld_rate * th

    # immunosuppression
    dydt[TREG] = (
        p[SIGMA_R]
        + p[A_R] * y[DR]
        + p[SIGMA_RS] * s_act / (1.0 + s_act)
        + p[P_R] * treg * il2 / (p[GI] + il2)
        - p[MU_R] * treg
        - p[CTLA4_DEP] * ro_ctla4 * treg
        - p[KL] * drug * treg
        - ld_rate * treg
    )
    dydt[SUP] = p[P_ST] * _saturation(tt, p[K_ST]) + p[P_SM] * y[M2] - p[MU_S] * y[SUP]
    dydt[M2] = p[SIGMA_M2] * _saturation(tt, p[K_M2]) - p[MU_M2] * y[M2]

    # humoral arm
    dydt[AB] = p[P_AB] * _saturation(th, p[K_H]) * ag_sat - p[MU_AB] * y[AB]

    # CAR-T (CARTmath effector/memory, saturating antigen contact)
    x = _saturation(tp_sum, p[CAR_GT])
    space = 0.0
    if p[BETA] > 0.0 and p[ALPHA] > 0.0:
        space = max(0.0, 1.0 - lym * p[BETA] / p[ALPHA])
    boost = (1.0 + p[CAR_LD_BOOST] * space) / (1.0 + p[CAR_LD_BOOST])
    t_loss = p[KL] * drug + ld_rate
    dydt[CAR_E] = (
        (p[CAR_EXPAND] * x * boost + p[CAR_PHI] - p[CAR_RHO] - p[CAR_EXHAUST] * x - t_loss) * ce
        + p[CAR_THETA] * x * cm
        + u[TX_CART] * p[WEIGHT]
    )
    dydt[CAR_M] = p[CAR_EPS] * ce - (p[CAR_THETA] * x + p[CAR_MU] + t_loss) * cm

    # antibody pharmacokinetics
    dydt[PD1_A] = -_LN2 / p[PD1_THALF] * y[PD1_A] + u[TX_PD1]
    dydt[CTLA4_A] = -_LN2 / p[CTLA4_THALF] * y[CTLA4_A] + u[TX_CTLA4] * p[WEIGHT]

    # neutrophils (Friberg 2002)
    ktr = 4.0 / p[FR_MTT]
    feedback = (p[ANC0] / max(y[ANC], 1.0)) ** p[FR_GAMMA]
    prol = y[PROL]
    dydt[PROL] = (
        ktr * prol * ((1.0 - p[FR_SLOPE] * drug_m) * feedback - 1.0)
        - p[LD_MARROW] * u[TX_LD] * prol
    )
    dydt[TR1] = ktr * (prol - y[TR1])
    dydt[TR2] = ktr * (y[TR1] - y[TR2])
    dydt[TR3] = ktr * (y[TR2] - y[TR3])
    dydt[ANC] = ktr * (y[TR3] - y[ANC])

    # toxicity signals: the irAE drive is PD-1 occupancy (saturated at clinical doses) plus
    # anti-CTLA-4 exposure (not saturated: ipilimumab toxicity rises with dose)
    act = _saturation(th + cd8, p[IRAE_K])
    ctla4_exposure = _saturation(y[CTLA4_A] / p[CTLA4_V], p[IRAE_KD_CTLA4])
    drive = ro_pd1 + p[IRAE_W] * ctla4_exposure
    dydt[IRAE] = p[IRAE_RATE] * drive * kappa * act
    dydt[IL6] = p[CRS_PROD] * car_kill - p[CRS_CLEAR] * y[IL6]
    dydt[BED_LATE] = 0.0

    # death hazard: background plus a power of the lethality-weighted burden
    hz = p[DEATH_BG] / _DAYS_PER_YEAR
    if lethal_mass > 0.0 and p[DEATH_RATE] > 0.0:
        hz += p[DEATH_RATE] * (lethal_mass / p[DEATH_REF]) ** p[DEATH_POWER]
    dydt[HZ] = hz


@jit
def _scale_lymphocytes(y, factor):
    """Multiply every lymphocyte population (C, N, L, H, R, CAR-T) by ``factor``."""
    y[LYM] *= factor
    y[NK] *= factor
    y[CD8] *= factor
    y[TH] *= factor
    y[TREG] *= factor
    y[CAR_E] *= factor
    y[CAR_M] *= factor


@jit
def dose(k, amount, y, p):
    if k == TX_CHEMO:
        y[DRUG] += amount * p[BSA] / p[CHEMO_V]
    elif k == TX_IL2:
        y[IL2] += amount * p[WEIGHT] / p[IL2_V]
    elif k == TX_TIL:
        y[CD8] += amount
    elif k == TX_PD1:
        y[PD1_A] += amount
    elif k == TX_CTLA4:
        y[CTLA4_A] += amount * p[WEIGHT]
    elif k == TX_VACCINE:
        y[DM] += amount
    elif k == TX_CART:
        y[CAR_E] += amount * p[WEIGHT]
    elif k == TX_LD:
        _scale_lymphocytes(y, math.exp(-p[LD_KILL] * amount))
        y[PROL] *= math.exp(-p[LD_MARROW] * amount)
    elif k == TX_RT:
        log_sf = lq_log_survival(amount, p[RT_ALPHA], p[RT_AB])
        # lesion 1 is the irradiated site; the share f of it lies inside the field
        f_field = p[RT_FIELD]
        killed = -math.expm1(log_sf) * f_field * y[TP]
        sf = math.exp(log_sf) if f_field >= 1.0 else 1.0 + f_field * math.expm1(log_sf)
        y[TP] *= sf
        y[TN] *= sf
        y[AG] += p[RT_ICD] * killed
        _scale_lymphocytes(y, math.exp(-p[RT_ALPHA_L] * p[RT_BLOOD] * amount))
        y[BED_LATE] += lq_bed(p[RT_TISSUE] * amount, p[RT_AB_LATE])


# --- metadata -------------------------------------------------------------------------------
_CART = "Barros et al. 2021 (CARTmath), HDLM-2 fit; checked against the authors' code"
_CAL = "value chosen (calibrated in experiments/calibration)"


def _chosen(form: str) -> str:
    return f"form: {form}; {_CAL}"


_EXT_PARAMS = (
    # immunoediting
    Param(
        "mu_loss",
        1e-5,
        "-",
        "antigen-loss probability per division (T⁺ → T⁻)",
        "chosen; 1e-6–1e-4 per division is the range usually quoted (unverified)",
    ),
    Param(
        "tn_fitness",
        1.0,
        "-",
        "growth rate of T⁻ relative to T⁺",
        "chosen: same growth as T⁺ (antigen-escape clone as in León-Triana et al. 2021); "
        "scenario-specific",
    ),
    # checkpoints and suppression
    Param(
        "pdl1",
        1.0,
        "a.u.",
        "PD-1–PD-L1 engagement Q without anti-PD-1",
        _chosen("Q of Nikolopoulou et al. 2018, reduced by (1 − ε·RO_pd1)"),
    ),
    Param(
        "K_TQ",
        0.5,
        "a.u.",
        "PD-1 inhibition constant in F(Q) = 1/(1 + Q/K_TQ)",
        _chosen("F(Q) = 1/(1 + Q/K_TQ) of Nikolopoulou et al. 2018"),
    ),
    Param(
        "delta_R",
        5e-6,
        "1/cell",
        "Treg suppression of NK/CTL kill and recruitment e^{−δ·R}",
        _chosen("e^{−δR} of de Pillis et al. 2013 (δ_T = 1.59e-9 per cell/L there)"),
    ),
    Param(
        "gamma_S",
        0.5,
        "1/a.u.",
        "TGF-β/IL-10 suppression 1/(1 + γ_S·S)",
        _chosen("1/(1 + γS) of Arciero et al. 2004"),
    ),
    Param(
        "k_RL",
        6e-7,
        "1/(cell·day)",
        "Treg inactivation of CTL k_r·R·L",
        "Kronik et al. 2010 k_r (BioModels MODEL2001130003)",
    ),
    Param(
        "ctla4_emax",
        1.0,
        "-",
        "priming boost at full anti-CTLA-4 occupancy (1 + E·RO)",
        _chosen("1 + E·RO on priming (CTLA-4 acts at priming: Serre et al. 2016); unverified"),
    ),
    Param(
        "ctla4_deplete",
        0.3,
        "1/day",
        "Treg depletion at full anti-CTLA-4 occupancy",
        _chosen("k·RO·R (Fc-mediated Treg depletion); unverified"),
    ),
    # antigen presentation (Kronik 2010) and CD4 help
    Param(
        "k_m",
        0.027,
        "1/day",
        "migration/maturation of antigen-loaded APCs",
        "Kronik et al. 2010 (BioModels MODEL2001130003)",
    ),
    Param(
        "alpha1",
        0.03,
        "-",
        "fraction of migrating APCs becoming functional mature DCs",
        "Kronik et al. 2010 (BioModels MODEL2001130003)",
    ),
    Param(
        "k_cr",
        0.027,
        "1/day",
        "mature → regulatory DC conversion",
        "Kronik et al. 2010 (BioModels MODEL2001130003)",
    ),
    Param(
        "mu_d",
        0.014,
        "1/day",
        "regulatory DC death",
        "Kronik et al. 2010 (BioModels MODEL2001130003)",
    ),
    Param(
        "a_c",
        0.3,
        "cells/(cell·day)",
        "CTL priming per mature DC",
        _chosen("a_c·DC of Kronik et al. 2010 (a_c = 0.03 there)"),
    ),
    Param(
        "a_r",
        0.003,
        "cells/(cell·day)",
        "Treg induction per regulatory DC",
        "Kronik et al. 2010 (BioModels MODEL2001130003)",
    ),
    Param(
        "sigma_DC",
        1e4,
        "cells/day",
        "DC maturation by dead-cell antigen (maximum)",
        _chosen("dying cells drive DC maturation, after Kosinsky et al. 2018 and Rauf et al. 2025"),
    ),
    Param(
        "K_Ag",
        1e7,
        "cells",
        "half-saturation of antigen-driven DC maturation",
        _chosen("saturating, after Kosinsky et al. 2018"),
    ),
    Param(
        "mu_Ag",
        0.1725,
        "1/day",
        "clearance of dead-cell antigen",
        "Kosinsky et al. 2018 μ (clearance of dying tumour cells, Table 1)",
    ),
    Param(
        "ag_shed",
        0.01,
        "1/day",
        "antigen released by T⁺ turnover (spontaneous death)",
        _chosen("spontaneous death d0 = 0.01/day of Kosinsky et al. 2018"),
    ),
    Param(
        "a_h",
        0.03,
        "cells/(cell·day)",
        "CD4 helper priming per mature DC",
        _chosen("a_c·DC form of Kronik et al. 2010"),
    ),
    Param(
        "mu_H",
        0.1,
        "1/day",
        "activated helper T-cell turnover",
        _chosen("first-order death; unverified"),
    ),
    Param(
        "K_H",
        1e4,
        "cells",
        "helper cells for half-maximal help",
        _chosen("saturating help factor; unverified"),
    ),
    Param(
        "h_min",
        0.3,
        "-",
        "relative CTL priming without CD4 help",
        _chosen("help factor h_min + (1 − h_min)·H/(K_H + H); unverified"),
    ),
    # Tregs, cytokines, macrophages
    Param(
        "sigma_R",
        770.0,
        "cells/day",
        "baseline Treg source (R* = σ_R/μ_R = 2e4)",
        _chosen("constant source, after de Pillis et al. 2013"),
    ),
    Param(
        "sigma_RS",
        2e3,
        "cells/day",
        "TGF-β-driven Treg induction (maximum)",
        _chosen("Treg induction by suppressive cytokines, after Ganguli & Sarkar 2018"),
    ),
    Param(
        "p_R",
        0.03598,
        "1/day",
        "IL-2-driven Treg expansion p_R·R·I/(g_I + I)",
        "de Pillis et al. 2013 (BioModels BIOMD0000000908)",
    ),
    Param("mu_R", 0.03851, "1/day", "Treg turnover", "de Pillis et al. 2013 u (BIOMD0000000908)"),
    Param(
        "p_ST",
        10.0,
        "a.u./day",
        "TGF-β/IL-10 production by tumour (maximum)",
        _chosen("Arciero et al. 2004 p4·T²/(τ²+T²), here T/(K + T)"),
    ),
    Param(
        "K_ST",
        1e9,
        "cells",
        "tumour size for half-maximal cytokine production",
        _chosen("after Arciero et al. 2004"),
    ),
    Param(
        "p_SM",
        1e-5,
        "a.u./(cell·day)",
        "TGF-β/IL-10 production per M2 macrophage",
        _chosen("IL-10 made by M2 cells (β_M2) of Ganguli & Sarkar 2018"),
    ),
    Param("mu_S", 10.0, "1/day", "TGF-β/IL-10 clearance", "Arciero et al. 2004 μ3"),
    Param(
        "sigma_M2",
        5e4,
        "cells/day",
        "tumour-driven M2 recruitment (maximum)",
        _chosen("tumour-driven M2 activation of Ganguli & Sarkar 2018"),
    ),
    Param(
        "K_M2",
        1e9,
        "cells",
        "tumour size for half-maximal M2 recruitment",
        _chosen("after Ganguli & Sarkar 2018"),
    ),
    Param("mu_M2", 0.05, "1/day", "M2 death", "Ganguli & Sarkar 2018 δ_M2 (BIOMD0000000810)"),
    # humoral arm
    Param(
        "p_Ab",
        0.05,
        "a.u./day",
        "tumour-specific antibody production (maximum)",
        _chosen("helped B-cell response; unverified"),
    ),
    Param(
        "mu_Ab",
        0.033,
        "1/day",
        "antibody clearance (IgG t½ ≈ 21 days)",
        "IgG half-life (textbook value; unverified)",
    ),
    Param(
        "K_Ab",
        1.0,
        "a.u.",
        "antibody level for half-maximal ADCC",
        _chosen("saturating opsonisation; unverified"),
    ),
    Param(
        "k_adcc",
        0.05,
        "1/day",
        "maximal antibody-dependent kill of T⁺ (modest)",
        _chosen("ADCC/ADCP/complement lumped; unverified"),
    ),
    # CAR-T
    Param(
        "car_expand",
        0.9,
        "1/day",
        "antigen-driven CAR-T expansion π·x·E",
        "León-Triana et al. 2021 ρ_C (BioModels BIOMD0000001013)",
    ),
    Param(
        "car_gT",
        1e10,
        "cells",
        "T⁺ for half-maximal CAR antigen contact x",
        "León-Triana et al. 2021 g_T (BioModels BIOMD0000001013)",
    ),
    Param("car_phi", 0.265, "1/day", "effector expansion φ", _CART),
    Param("car_rho", 0.35, "1/day", "effector death ρ", _CART),
    Param(
        "car_eps",
        0.003,
        "1/day",
        "memory formation ε",
        _chosen(
            "ε·C_T of Barros et al. 2021 (CARTmath; 0.15 in mice); set for ZUMA-1 "
            "CAR-T persistence (Kimmel et al. 2021)"
        ),
    ),
    Param("car_mu", 5e-3, "1/day", "memory death μ", _CART),
    Param(
        "car_theta",
        0.5,
        "1/day",
        "memory → effector reactivation at full antigen contact",
        _chosen("θ·T·C_M of Barros et al. 2021 (CARTmath), contact saturated"),
    ),
    Param(
        "car_exhaust",
        0.1,
        "1/day",
        "effector exhaustion at full antigen contact",
        _chosen("α·T·C_T of Barros et al. 2021 (CARTmath), contact saturated"),
    ),
    Param(
        "car_kill",
        1.15,
        "1/day",
        "maximal CAR-T kill of T⁺ γ_B·E/(k_B + E)",
        "Kimmel et al. 2021 γ_B (the paper's Table 1)",
    ),
    Param(
        "car_K",
        2.024e9,
        "cells",
        "CAR-T cells for half-maximal kill",
        "Kimmel et al. 2021 k_B (the paper's Table 1)",
    ),
    Param(
        "car_ld_boost",
        0.3,
        "-",
        "CAR-T expansion after full lymphodepletion over that without, minus 1",
        _chosen(
            "lymphodepletion frees homeostatic space (Kimmel et al. 2021); the CAR-T "
            "scenarios calibrate it (Turtle et al. 2016: CR 50 % with fludarabine-based "
            "lymphodepletion, 8 % without fludarabine)"
        ),
    ),
    # pharmacokinetics and dose conversions
    Param(
        "pd1_half_life_d",
        25.0,
        "day",
        "anti-PD-1 half-life (nivolumab-like)",
        "labels: nivolumab ~25, pembrolizumab ~22 days; unverified",
    ),
    Param(
        "pd1_volume_l",
        6.0,
        "L",
        "anti-PD-1 volume of distribution",
        "labels: V_ss ≈ 6–7 L; unverified",
    ),
    Param(
        "pd1_kd_mg_l",
        0.5,
        "mg/L",
        "anti-PD-1 concentration for 50 % occupancy (effective)",
        "RO = C/(C + K_D): nivolumab binds PD-1 with K_D 3 nM ≈ 0.45 mg/L (Wang C et al. "
        "Cancer Immunol Res 2014;2:846-56; unverified); pembrolizumab binds more tightly, and its "
        "target engagement is full at trough of every dose from 1 mg/kg q3w (Patnaik A et "
        "al. Clin Cancer Res 2015;21:4286-93): troughs of clinical doses (15-60 mg/L) give "
        "RO > 96 %",
    ),
    Param(
        "ctla4_half_life_d",
        15.0,
        "day",
        "anti-CTLA-4 half-life (ipilimumab-like)",
        "ipilimumab label: ~15 days; unverified",
    ),
    Param(
        "ctla4_volume_l",
        7.0,
        "L",
        "anti-CTLA-4 volume of distribution",
        "labels: V_ss ≈ 6–7 L; unverified",
    ),
    Param(
        "ctla4_kd_mg_l",
        3.0,
        "mg/L",
        "anti-CTLA-4 concentration for 50 % occupancy",
        _chosen("RO = C/(C + K_D); unverified"),
    ),
    Param("body_weight_kg", 70.0, "kg", "body weight (per-kg doses)", "chosen: standard adult"),
    Param("bsa_m2", 1.8, "m²", "body-surface area (per-m² doses)", "chosen: standard adult"),
    Param(
        "chemo_volume_l",
        50.0,
        "L",
        "chemotherapy volume: M += dose·BSA/V",
        _chosen("one-compartment PK of de Pillis et al. 2006"),
    ),
    Param(
        "chemo_delta",
        0.4,
        "L/mg",
        "chemo potency δ in 1 − e^{−δM}",
        _chosen("1 − e^{−δM} of de Pillis et al. 2009 (δ = 1.8328 in its units)"),
    ),
    Param(
        "il2_volume_l",
        5.0,
        "L",
        "IL-2 distribution volume: I += dose·weight/V",
        _chosen("blood volume ≈ 5 L"),
    ),
    Param(
        "ld_kill",
        1.2,
        "1/course-day",
        "lymphocyte log-kill per flu/cy course day",
        _chosen("flu 30 + cy 500 mg/m² on days −5…−3, ZUMA-1 (Neelapu et al. 2017)"),
    ),
    Param(
        "ld_marrow",
        0.5,
        "1/course-day",
        "marrow progenitor log-kill per lymphodepletion day",
        _chosen("log-kill per course day; unverified"),
    ),
    # radiotherapy
    Param("rt_alpha", 0.3, "1/Gy", "tumour LQ α", "typical value (0.2–0.4); unverified"),
    Param("rt_alpha_beta", 10.0, "Gy", "tumour α/β", "typical value; unverified"),
    Param(
        "rt_alpha_lymph",
        0.5,
        "1/Gy",
        "circulating-lymphocyte radiosensitivity α_L",
        "typical value; unverified",
    ),
    Param(
        "rt_blood_frac",
        0.1,
        "-",
        "effective blood dose / prescription dose",
        "typical range 5–20 %; unverified",
    ),
    Param(
        "rt_icd",
        1.0,
        "-",
        "antigen released per radiation-killed T⁺ cell (ICD gain)",
        _chosen("immunogenic-cell-death amplification, after Rauf et al. 2025"),
    ),
    Param(
        "rt_tissue_frac",
        1.0,
        "-",
        "late-responding tissue dose / prescription dose",
        _chosen("whole prescription; unverified; lower it for SBRT-like fields"),
    ),
    Param(
        "rt_alpha_beta_late", 3.0, "Gy", "late-responding normal tissue α/β", "typical; unverified"
    ),
    # neutrophils (Friberg 2002, docetaxel system parameters)
    Param(
        "fr_mtt_d",
        88.7 / 24.0,
        "day",
        "mean transit time (88.7 h)",
        "Friberg et al. 2002, docetaxel (checked against myelo)",
    ),
    Param("fr_gamma", 0.161, "-", "feedback exponent", "Friberg et al. 2002, docetaxel"),
    Param("anc0_per_l", 5.05e9, "cells/L", "baseline ANC", "Friberg et al. 2002, docetaxel"),
    Param(
        "fr_slope",
        0.5,
        "L/mg",
        "drug effect on progenitors E = slope·M",
        _chosen("linear E_drug = slope·C of Friberg et al. 2002"),
    ),
    # toxicity signals
    Param(
        "alc_volume_l",
        31.25,
        "L",
        "ALC = C / V (maps C* = 6.25e10 to 2.0e9/L)",
        _chosen("C* = α/β of de Pillis et al. 2006 (derived); 2.25e9 cells/L in de Pillis 2009"),
    ),
    Param(
        "irae_rate",
        0.005,
        "1/day",
        "irAE hazard at full occupancy and activation",
        _chosen("hazard ∝ occupancy × activation; unverified"),
    ),
    Param(
        "irae_w_ctla4",
        1.5,
        "-",
        "weight of anti-CTLA-4 occupancy in the irAE hazard",
        _chosen("higher irAE rate with ipilimumab (CheckMate 067, Larkin et al. 2015)"),
    ),
    Param(
        "irae_K",
        1e6,
        "cells",
        "activated T cells (H + L) for half-maximal irAE hazard",
        _chosen("saturating activation; unverified"),
    ),
    Param(
        "crs_prod",
        1e-8,
        "(pg/mL)/cell",
        "IL-6-like signal per CAR-T-killed cell",
        _chosen("IL-6 ∝ CAR-T killing rate; unverified"),
    ),
    Param("crs_clear", 1.0, "1/day", "clearance of the IL-6-like signal", _chosen("first-order")),
    # radiotherapy field (appended last: the earlier parameter indices are unchanged)
    Param(
        "rt_field_fraction",
        1.0,
        "-",
        "fraction of the tumour burden inside the radiation field (T± ×= 1 − f + f·SF)",
        "chosen: 1 = the whole burden irradiated (localised disease); lower it for "
        "metastatic or systemic disease treated to one site",
    ),
    # chemotherapy against the vaccine's antigen presentation (appended last, as above)
    Param(
        "k_chemo_apc",
        0.0,
        "1/day",
        "chemo loss of antigen-presenting cells (vaccine APCs Dm and mature DCs): K·drug",
        "chosen form on the APC states of Kronik et al. 2010; 0 = none; calibrated where "
        "a trial of a cellular vaccine given with chemotherapy pins it (prostate: VIABLE)",
    ),
    # lesions (appended: the earlier parameter indices are unchanged)
    *(
        Param(
            f"infil_{i}",
            1.0,
            "-",
            f"CTL infiltration (immune access) of lesion {i}: its effector ratio is "
            "L·infil_i/Σ_j infil_j·T⁺_j",
            "chosen form: CTLs home to the lesions in proportion to infil_i·T⁺_i; with one "
            "lesion and infil = 1 this is de Pillis's L/T; scenarios draw it per lesion and site",
        )
        for i in range(1, N_LESIONS + 1)
    ),
    *(
        Param(
            f"lethality_{i}",
            1.0,
            "-",
            f"weight of lesion {i}'s cells in the death hazard (its site)",
            "chosen: visceral (liver, brain) disease carries more risk of death per cell "
            "than skin, soft tissue or nodes; scenarios set it per site",
        )
        for i in range(1, N_LESIONS + 1)
    ),
    # death (cumulative hazard Hz; death when Hz reaches the patient's death_threshold)
    Param(
        "death_rate",
        0.0,
        "1/day",
        "cancer death hazard at the reference weighted burden",
        "chosen form: hazard = death_rate·(Σ lethality_i·T_i / death_ref_cells)^death_power; "
        "0 = death only at the lethal burden; calibrated per scenario to untreated or "
        "best-supportive-care survival",
    ),
    Param(
        "death_ref_cells",
        1e11,
        "cells",
        "reference weighted burden of the death hazard",
        "chosen: 1e11 cells ≈ 100 cm³ of tumour",
    ),
    Param(
        "death_power",
        1.0,
        "-",
        "exponent of the weighted burden in the death hazard",
        "chosen: the risk of death rises in proportion to the burden",
    ),
    Param(
        "death_bg_per_year",
        0.0,
        "1/year",
        "background (non-cancer) mortality hazard",
        "age-matched life tables (unverified); scenarios set it",
    ),
    Param(
        "death_threshold",
        1.0,
        "-",
        "the patient's death threshold: death when the cumulative hazard Hz reaches it",
        "a unit-exponential draw per patient (P(threshold > H) = e^{−H}), so that Hz is the "
        "cumulative hazard of a survival time (derived); scenarios draw it (exponential)",
    ),
    # exposure-response (appended, as above)
    Param(
        "pd1_max_block",
        0.9,
        "-",
        "largest fraction of PD-1/PD-L1 engagement that anti-PD-1 removes: Q = pdl1·(1 − ε·RO)",
        "chosen (unverified): blockade relieves most but not all inhibition of exhausted CTLs, "
        "which co-express other inhibitory receptors (LAG-3, TIM-3, TIGIT); PD-1 occupancy on "
        "circulating T cells stays above 70 % for two months after single doses of "
        "0.3-10 mg/kg nivolumab (Brahmer JR et al. J Clin Oncol 2010;28:3167-75), so at "
        "clinical doses RO is near 1 and the effect saturates at ε",
    ),
    Param(
        "irae_kd_ctla4_mg_l",
        30.0,
        "mg/L",
        "anti-CTLA-4 concentration for half-maximal irAE drive",
        "chosen (unverified): ipilimumab immune-related toxicity rises with exposure across "
        "0.3-10 mg/kg (Feng Y et al. Clin Cancer Res 2013;19:3977-86; CA184-169: grade 3-4 "
        "TRAEs 34 % at 10 mg/kg vs 18 % at 3 mg/kg, Ascierto PA et al. Lancet Oncol "
        "2017;18:611-22); 30 mg/L is about the mean concentration over a 3 mg/kg course",
    ),
)

_PARAMS = tuple(depillis2006.MODEL.params) + _EXT_PARAMS

# Absolute tolerances are set to what is meaningful for each quantity (1e-3 tumour cells,
# 1e-2 other cells, 1e-8 mg/L of drug): much tighter values (de Pillis's 1e-12 mg/L for M)
# sit below the round-off that RODAS4's linear algebra leaks from states of size 1e9–1e11,
# and the step size then collapses in the stiff (large-tumour) regime.
_TUMOUR = 1e-3
_CELLS = 1e-2
_STATES = (
    State("Tp", "cells", "antigen-positive tumour cells T⁺ of lesion 1", floor=1.0, atol=_TUMOUR),
    State("Tn", "cells", "antigen-low tumour cells T⁻ of lesion 1", floor=1.0, atol=_TUMOUR),
    State("N", "cells", "natural killer (NK) cells", atol=_CELLS),
    State("L", "cells", "tumour-specific CD8+ T cells (CTL)", atol=_CELLS),
    State("C", "cells", "circulating lymphocytes", atol=_CELLS),
    State("M", "mg/L", "chemotherapy drug in blood", atol=1e-8),
    State("I", "IU/L", "IL-2 in blood", atol=1e-3),
    State("Ag", "cells", "dead-cell tumour antigen / immunogenic-cell-death pool", atol=_CELLS),
    State(
        "Dm",
        "cells",
        "antigen-loaded APCs migrating to lymph nodes (vaccine)",
        floor=1.0,
        atol=_CELLS,
    ),
    State("DC", "cells", "functional mature dendritic cells", atol=_CELLS),
    State("Dr", "cells", "regulatory (tolerogenic) dendritic cells", atol=_CELLS),
    State("H", "cells", "activated CD4+ helper T cells", atol=_CELLS),
    State("R", "cells", "regulatory T cells (Tregs)", atol=_CELLS),
    State("S", "a.u.", "suppressive cytokines (TGF-β/IL-10, lumped)", atol=1e-8),
    State("M2", "cells", "M2 tumour-associated macrophages", atol=_CELLS),
    State("Ab", "a.u.", "tumour-specific antibody titre", atol=1e-8),
    State("CARe", "cells", "effector CAR-T cells", floor=1.0, atol=_CELLS),
    State("CARm", "cells", "memory CAR-T cells", floor=1.0, atol=_CELLS),
    State("A_pd1", "mg", "anti-PD-1 antibody in the body", atol=1e-6),
    State("A_ctla4", "mg", "anti-CTLA-4 antibody in the body", atol=1e-6),
    State("Prol", "cells/L", "proliferating marrow progenitors (ANC-equivalent)", atol=1.0),
    State("Tr1", "cells/L", "maturing neutrophils, transit 1", atol=1.0),
    State("Tr2", "cells/L", "maturing neutrophils, transit 2", atol=1.0),
    State("Tr3", "cells/L", "maturing neutrophils, transit 3", atol=1.0),
    State("ANC", "cells/L", "absolute neutrophil count", atol=1.0),
    State("irAE", "-", "cumulative hazard of immune-related adverse events", atol=1e-8),
    State("IL6", "pg/mL", "IL-6-like cytokine-release signal", atol=1e-6),
    State("BED_late", "Gy3", "accumulated late-tissue BED (α/β = 3)", atol=1e-8),
    *(
        s
        for i in range(2, N_LESIONS + 1)
        for s in (
            State(
                f"Tp{i}",
                "cells",
                f"antigen-positive tumour cells of lesion {i}",
                floor=1.0,
                atol=_TUMOUR,
            ),
            State(
                f"Tn{i}",
                "cells",
                f"antigen-low tumour cells of lesion {i}",
                floor=1.0,
                atol=_TUMOUR,
            ),
        )
    ),
    State(
        "Hz", "-", "cumulative hazard of death (death when it reaches death_threshold)", atol=1e-8
    ),
)

_THERAPIES = (
    Therapy("chemo", "mg/m²", "cytotoxic chemotherapy (one-compartment PK, M += dose·BSA/V)"),
    Therapy("il2", "IU/kg", "IL-2 (I += dose·weight/V_IL2)"),
    Therapy("til", "cells", "tumour-infiltrating lymphocytes (adoptive CD8+ transfer)"),
    Therapy("anti_pd1", "mg", "anti-PD-1 antibody (nivolumab/pembrolizumab-like)"),
    Therapy("anti_ctla4", "mg/kg", "anti-CTLA-4 antibody (ipilimumab-like)"),
    Therapy("vaccine", "cells", "antigen-loaded APCs (sipuleucel-T-like; ≥ 5e7 per infusion)"),
    Therapy("car_t", "cells/kg", "CAR⁺ T cells into the effector pool"),
    Therapy(
        "lymphodepletion",
        "course days",
        "fludarabine/cyclophosphamide-like conditioning; 1 = one day of flu 30 + cy 500 mg/m²",
    ),
    Therapy("radiotherapy", "Gy", "one external-beam fraction (instantaneous)", infusion=False),
)

_DEPILLIS_REDUCTION = {
    "mu_loss": 0.0,
    "pdl1": 0.0,
    "delta_R": 0.0,
    "gamma_S": 0.0,
    "k_RL": 0.0,
    "ctla4_emax": 0.0,
    "a_c": 0.0,
    "h_min": 1.0,
    "k_adcc": 0.0,
    "car_kill": 0.0,
    "bsa_m2": 1.0,
    "chemo_volume_l": 1.0,
    "chemo_delta": 1.0,
    "body_weight_kg": 1.0,
    "il2_volume_l": 1.0,
}
"""Switches every extension off (T⁺, N, L, C, M, I then follow de Pillis 2006 patient 9):
no antigen loss, F = ψ = κ = η = 1, no DC priming, no Treg inactivation, no ADCC or CAR
kill; chemo doses in mg/L and IL-2 doses in IU/L (conversion factors 1)."""


def _initial_state() -> dict[str, float]:
    """Tumour-free homeostasis (de Pillis C*, N*; R* = σ_R/μ_R; ANC0) plus 1e6 T⁺ cells."""
    dp = depillis2006.MODEL.default_state()
    ext = {q.name: q.value for q in _EXT_PARAMS}
    state = dict.fromkeys((s.name for s in _STATES), 0.0)
    state.update({"Tp": dp["T"], "N": dp["N"], "C": dp["C"]})
    state["R"] = ext["sigma_R"] / ext["mu_R"]
    for name in ("Prol", "Tr1", "Tr2", "Tr3", "ANC"):
        state[name] = ext["anc0_per_l"]
    return state


MODEL = Model(
    name="oncoimmune",
    title="oncoimmune: de Pillis 2006 extended with immunoediting, checkpoints, "
    "immunosuppression, vaccines, CAR-T, chemo- and radiotherapy and toxicity",
    reference="Composite: de Pillis et al. 2006 (patient 9) extended with terms from de Pillis "
    "et al. 2013, Arciero et al. 2004, Nikolopoulou et al. 2018, Kronik et al. 2010, Kosinsky "
    "et al. 2018, Ganguli & Sarkar 2018, Barros et al. 2021 (CARTmath), León-Triana et al. "
    "2021, Kimmel et al. 2021, Friberg et al. 2002 and the linear-quadratic model, and with "
    "terms of this project's own; the equations page gives each term's source.",
    states=_STATES,
    params=_PARAMS,
    therapies=_THERAPIES,
    rhs=rhs,
    dose=dose,
    initial_state=_initial_state(),
    parameter_sets={"depillis2006": _DEPILLIS_REDUCTION},
    notes="Default state: tumour-free homeostasis (C* = α/β, N* = e·C*/f, R* = σ_R/μ_R, "
    "marrow at ANC0) plus 1e6 antigen-positive tumour cells; all other states 0.  With the "
    "default parameters this patient is cleared, while T⁺(0) above about 7e5 escapes to the "
    "carrying capacity 1/b (anti-PD-1 raises that threshold to about 2.6e6): de Pillis "
    "patient 9 is bistable and controls only small tumours, so scenarios re-fit growth, "
    "capacity and the CTL terms.  T⁻ arises from T⁺ at μ_loss·a·T⁺; while that inflow is "
    "below about one cell per integration step the extinction floor removes it again (a "
    "crude stand-in for the stochastic establishment of a clone), so give T⁻(0) explicitly "
    "where the antigen-negative clone matters.  parameter_set('depillis2006') switches every "
    "extension off (nested reduction to de Pillis 2006 patient 9, doses in mg/L and IU/L).  "
    "Toxicity grades: oncogym.toxicity.toxicity_grades.",
)
