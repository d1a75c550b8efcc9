using System.Collections.Generic;

namespace EngineBridge
{
    /// <summary>The daemon's answer to a session or flush request, given to its callback on the pump thread.</summary>
    public sealed class Reply
    {
        internal Reply(string type, string errorCode, string message, IDictionary<string, object> body)
        {
            Type = type;
            ErrorCode = errorCode;
            Message = message;
            Body = body;
        }

        /// <summary>False when the request failed: <see cref="ErrorCode"/> and <see cref="Message"/> say why.</summary>
        public bool Ok { get { return ErrorCode == null; } }

        /// <summary><c>session</c>, <c>flushed</c>, or <c>error</c>.</summary>
        public string Type { get; private set; }

        /// <summary>protocol.md section 6, e.g. <c>not_configured</c>, <c>no_session</c>; null on success.</summary>
        public string ErrorCode { get; private set; }

        public string Message { get; private set; }

        /// <summary>The whole reply map as the daemon sent it (e.g. <c>queued</c> of <c>flushed</c>).</summary>
        public IDictionary<string, object> Body { get; private set; }
    }
}
