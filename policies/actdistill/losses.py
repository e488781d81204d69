"""ActDistill's stage-2 objective (reference-code form), plus the optional compute-budget term.

For block l with student semantic vector s_l, teacher semantic vector t_l, block action a_l:
    L_sem,l = mean_b (1 - cos(s_l, t_l)) + eta · MSE(C(s_l), C(t_l)),   C = batch pairwise-cosine matrix
    L_act,l = MSE(a_l, a_gt) + MSE(a_l, a_teacher,l) + MSE(a_l, a_{l-1}.detach())   (last term for l >= 1)
    w_l = (l / (L - 1))**gamma, normalised to mean 1
    total = task + sum_l w_l (alpha L_sem,l + beta L_act,l) + balance · Var_l(mean_b g_l) [+ budget term]
The budget term, budget_weight · max(0, mean gate - budget)², is ours: the balance loss evens gates across blocks
but does not say how many blocks run. Given straight-through gates (`StudentVLA.training_gates`), the mean is the
fraction of blocks that really ran, and the gradient reaches the soft gates.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from policies.actdistill.configuration import ActDistillConfig


def block_weights(depth: int, gamma: float) -> torch.Tensor:
    w = (torch.arange(depth, dtype=torch.float32) / max(depth - 1, 1)) ** gamma
    return w / w.mean()


def pairwise_cosine(x: torch.Tensor) -> torch.Tensor:
    """(B, s) -> (B, B) cosine similarities."""
    x = F.normalize(x, dim=-1)
    return x @ x.T


def semantic_loss(s: torch.Tensor, t: torch.Tensor, eta: float) -> torch.Tensor:
    """s, t: (B, s) for one block."""
    direction = (1 - F.cosine_similarity(s, t, dim=-1)).mean()
    return direction + eta * F.mse_loss(pairwise_cosine(s), pairwise_cosine(t))


def action_loss(a: torch.Tensor, a_gt: torch.Tensor, a_teacher: torch.Tensor, a_prev: torch.Tensor | None) -> torch.Tensor:
    loss = F.mse_loss(a, a_gt) + F.mse_loss(a, a_teacher)
    if a_prev is not None:
        loss = loss + F.mse_loss(a, a_prev.detach())
    return loss


def balance_loss(gates: torch.Tensor) -> torch.Tensor:
    """gates (B, L): variance over blocks of each block's mean gate."""
    return gates.mean(0).var(unbiased=False)


def budget_loss(gates: torch.Tensor, budget: float) -> torch.Tensor:
    """Zero while at most `budget` of the gates are on (on average), quadratic above."""
    return torch.relu(gates.mean() - budget) ** 2


def gate_terms(gates: torch.Tensor, cfg: ActDistillConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """balance · Var_l(mean_b g_l) [+ budget_weight · budget term], and their logged values."""
    balance = balance_loss(gates)
    loss = cfg.balance * balance
    parts = {"balance": balance.item(), "gate_mean": gates.mean().item()}
    if cfg.budget is not None:
        b = budget_loss(gates, cfg.budget)
        loss = loss + cfg.budget_weight * b
        parts["budget"] = b.item()
    return loss, parts


def distillation_loss(task: torch.Tensor, s_student: torch.Tensor, s_teacher: torch.Tensor, a_student: torch.Tensor,
                      a_teacher: torch.Tensor, a_gt: torch.Tensor, gates: torch.Tensor, cfg: ActDistillConfig
                      ) -> tuple[torch.Tensor, dict[str, float]]:
    """s_*: (B, L, s); a_student, a_teacher: (B, L, K, A) per-block actions; a_gt: (B, K, A); gates (B, L)."""
    depth = s_student.shape[1]
    w = block_weights(depth, cfg.gamma).to(task.device)
    sem = torch.stack([semantic_loss(s_student[:, l], s_teacher[:, l], cfg.eta) for l in range(depth)])
    act = torch.stack([
        action_loss(a_student[:, l], a_gt, a_teacher[:, l], a_student[:, l - 1] if l > 0 else None)
        for l in range(depth)
    ])
    gate_loss, gate_parts = gate_terms(gates, cfg)
    total = task + (w * (cfg.alpha * sem + cfg.beta * act)).sum() + gate_loss
    return total, {"task": task.item(), "sem": sem.mean().item(), "act": act.mean().item(), **gate_parts}


def output_distillation(task: torch.Tensor, a_student: torch.Tensor, a_teacher: torch.Tensor, beta: float
                        ) -> tuple[torch.Tensor, dict[str, float]]:
    """task + beta · MSE(student actions, teacher actions): the objective of every model that learns from the
    teacher's outputs alone (the no-graph ablation, the fine-tuned pruned and early-exit baselines).
    a_*: (B, K, A) action chunks."""
    out = F.mse_loss(a_student, a_teacher)
    return task + beta * out, {"task": task.item(), "out": out.item()}


def output_distillation_loss(task: torch.Tensor, a_student: torch.Tensor, a_teacher: torch.Tensor,
                             gates: torch.Tensor, cfg: ActDistillConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The no-graph ablation: `output_distillation` + the gate terms."""
    loss, parts = output_distillation(task, a_student, a_teacher, cfg.beta)
    gate_loss, gate_parts = gate_terms(gates, cfg)
    return loss + gate_loss, {**parts, **gate_parts}
