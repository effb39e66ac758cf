from __future__ import annotations

from django import template
from django.conf import settings

from boochat.chat.attachments import refuse_images
from providers.capabilities import image_support

register = template.Library()


@register.simple_tag
def attach_rules(model_id: str, member: str = "") -> dict[str, object]:
    """What the composer may attach for `model_id`: whether images go (yes / no / ask / unknown),
    the limits, and what to say about images before anything is sent. `member`: the pool's member
    the page already chose for a pool's model (not chosen again here)."""
    support = image_support(member or model_id) if model_id else None
    state = support.state if support else "unknown"
    name = model_id.split("/", 1)[-1]
    if state == "yes":
        hint = f"Images, PDFs and text files: {name} takes images."
    elif state == "ask":
        hint = f"Images, PDFs and text files: whether {name} takes images is asked from its host when you send."
    else:
        hint = f"PDFs and text files. {name} takes no images, as far as BooChat knows."
    return {
        "images": state,
        "hint": hint,
        "refusal": refuse_images(model_id, support) if support and state in ("no", "unknown") else "",
        "max_count": settings.BOOCHAT_MAX_ATTACHMENTS,
        "max_image_bytes": settings.BOOCHAT_MAX_IMAGE_BYTES,
        "max_file_bytes": settings.BOOCHAT_MAX_FILE_BYTES,
    }
