"""Arena pages: start a run, stream its answers side by side, analyze, export, continue as chat."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponseBase, JsonResponse
from django.shortcuts import aget_object_or_404, get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST

from boochat import database
from boochat.arena import runs as arena
from boochat.autosave import interrupt_stale_answers
from boochat.limits import LimitReached
from boochat.models import ArenaAnswer, ArenaRun, UsageRecord
from boochat.proxy import sse_response
from boochat.usage.recording import admit_answer
from providers.access import catalog_for
from providers.routing import RoutingError
from providers.upstream import UpstreamError
from settings_app.models import Favorite
from settings_app.picker import build_picker
from settings_app.requests import HtmxHttpRequest

MODEL_FIELDS = [f"model_{n}" for n in range(1, arena.MAX_MODELS + 1)]


def _form_context(request: HtmxHttpRequest, **extra: object) -> dict[str, object]:
    return {
        "picker": build_picker(catalog_for(request.user.pk), Favorite.objects.ids_for(request.user), chat=True),
        "runs": ArenaRun.objects.filter(user=request.user).prefetch_related("answers")[:20],
        "model_fields": MODEL_FIELDS,
        **extra,
    }


@require_GET
def arena_index(request: HtmxHttpRequest) -> TemplateResponse:
    """The arena: a prompt, 2–4 models, and the past runs."""
    return TemplateResponse(request, "arena.html", _form_context(request, selected={}, prompt=""))


@require_POST
def arena_new(request: HtmxHttpRequest) -> HttpResponseBase:
    """Save a run and go to its page, where the answers start streaming."""
    model_ids = [request.POST.get(field, "") for field in MODEL_FIELDS]
    try:
        run = arena.create_run(user=request.user, prompt=request.POST.get("prompt", ""), model_ids=model_ids,
                               analyzer=request.POST.get("analyzer", ""))
    except arena.ArenaError as exc:
        selected = {field: request.POST.get(field, "") for field in [*MODEL_FIELDS, "analyzer"]}
        context = _form_context(request, error=str(exc), selected=selected, prompt=request.POST.get("prompt", ""))
        return TemplateResponse(request, "arena.html", context)
    return redirect(run)


@require_GET
def arena_run(request: HtmxHttpRequest, pk: int) -> TemplateResponse:
    """One run: a column per model, then the analysis."""
    run = get_object_or_404(ArenaRun.objects.filter(user=request.user), pk=pk)
    interrupt_stale_answers(ArenaAnswer, run=run)
    return TemplateResponse(request, "arena.html", {"run": run, "answers": list(run.answers.all())})


@require_POST
async def arena_answer_stream(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Stream one column's answer from its own host (or, without the stream header, wait for it)."""
    answer = await aget_object_or_404(ArenaAnswer, pk=pk, run__user_id=(await request.auser()).pk)
    streaming = request.headers.get("X-BooChat-Stream") == "1"
    try:
        meter = await database.run(admit_answer, request.user.pk, answer.model_id,
                                   UsageRecord.Source.ARENA)
        stream = await arena.stream_answer(answer, meter)
    except (arena.ArenaError, RoutingError, UpstreamError, LimitReached) as exc:
        status = 409 if isinstance(exc, arena.ArenaError) else getattr(exc, "status", 400)
        if streaming:
            return JsonResponse({"error": str(exc)}, status=status)
        messages.error(request, str(exc))
        return redirect("arena_run", answer.run_id)
    if not streaming:
        async for _ in stream:
            pass
        return redirect("arena_run", answer.run_id)
    return sse_response(stream, headers={"X-BooChat-Provider": answer.provider})


@require_POST
async def arena_analyze(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Compare the answers with the run's analyzer model; returns the analysis fragment."""
    run = await aget_object_or_404(ArenaRun, pk=pk, user_id=(await request.auser()).pk)
    await arena.analyze(run)
    if not request.htmx:
        return redirect(run)
    return TemplateResponse(request, "arena.html#analysis", {"run": run})


@require_GET
def arena_answer(request: HtmxHttpRequest, pk: int) -> TemplateResponse:
    """One saved column, rendered (swapped in when its stream ends)."""
    answer = get_object_or_404(ArenaAnswer.objects.select_related("run"), pk=pk, run__user=request.user)
    return TemplateResponse(request, "arena.html#answer", {"answer": answer})


@require_GET
def arena_export(request: HtmxHttpRequest, pk: int) -> JsonResponse:
    """The run as a JSON file."""
    run = get_object_or_404(ArenaRun.objects.filter(user=request.user), pk=pk)
    response = JsonResponse(arena.export(run), json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="arena-{run.pk}.json"'
    return response


@require_POST
def arena_continue(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Open one answer as a normal chat session."""
    answer = get_object_or_404(ArenaAnswer.objects.select_related("run__user"), pk=pk, run__user=request.user)
    return redirect(arena.continue_as_chat(answer))
