/** `rallypoint/turn`: the embedded TURN server arrives with issue 4. */
export {};
