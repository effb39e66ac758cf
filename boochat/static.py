"""WhiteNoise in Django's async middleware chain.

WhiteNoise 6 is synchronous middleware. Under ASGI, Django then runs every request through it in a
worker thread and back to the event loop for the rest of the chain, and it reads each static file
whole in a thread before sending it, warning each time ("StreamingHttpResponse must consume
synchronous iterators"). This subclass is also async-capable: a request for anything but a static
file goes straight on, and a static file is sent as it is read, in blocks, each read in a thread.
Everything else (which files, headers, compression, caching, 304s) is WhiteNoise's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware

BLOCK_SIZE = 64 * 1024


async def _blocks(file: IO[bytes] | None) -> AsyncIterator[bytes]:
    if file is None:  # HEAD, 304
        return
    read = sync_to_async(file.read, thread_sensitive=False)
    while block := await read(BLOCK_SIZE):
        yield block


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if static_file is None:
            return await self.get_response(request)
        # Finding the variant (gzip, brotli), stat and open touch the disk: a thread.
        response = await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        file = response.file_to_stream  # closed with the response, as WhiteNoise's own
        response.streaming_content = _blocks(file)
        return response
